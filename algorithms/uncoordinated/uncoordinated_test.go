package uncoordinated

import (
	"flag"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms/algotest"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/")

func TestConformance(t *testing.T) { algotest.Run(t, Algorithm()) }

func FuzzSchedule(f *testing.F) { algotest.Fuzz(f, Algorithm()) }

func TestScripts(t *testing.T) { algotest.RunScripts(t, Algorithm(), "testdata/*.txt", *rewrite) }
