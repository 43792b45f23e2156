package main

import (
	"context"
	"errors"
)

func runLab(ctx context.Context, c *cli, args []string) error {
	return errors.New("lab: not implemented yet")
}
