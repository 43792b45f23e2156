package stack

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

// TestStillRunning: a stop waits for tasks with a container running or starting, and
// for tasks not started yet that swarm still wants running; not for tasks that will
// never get a container (not started, desired shut down) or that ended.
func TestStillRunning(t *testing.T) {
	task := func(id string, state, desired swarm.TaskState) swarm.Task {
		return swarm.Task{ID: id, Status: swarm.TaskStatus{State: state}, DesiredState: desired}
	}
	tasks := []swarm.Task{
		task("running-shutdown", swarm.TaskStateRunning, swarm.TaskStateShutdown),
		task("starting-shutdown", swarm.TaskStateStarting, swarm.TaskStateShutdown),
		task("preparing-running", swarm.TaskStatePreparing, swarm.TaskStateRunning),
		task("preparing-shutdown", swarm.TaskStatePreparing, swarm.TaskStateShutdown),
		task("assigned-shutdown", swarm.TaskStateAssigned, swarm.TaskStateShutdown),
		task("shutdown", swarm.TaskStateShutdown, swarm.TaskStateShutdown),
		task("failed", swarm.TaskStateFailed, swarm.TaskStateShutdown),
	}
	got := strings.Join(stillRunning(tasks), "; ")
	for _, want := range []string{"running-shut", "starting-shu", "preparing-ru"} {
		if !strings.Contains(got, "task "+want) {
			t.Errorf("stillRunning = %q, lacks %s", got, want)
		}
	}
	for _, not := range []string{"preparing-sh", "assigned-shu", "task shutdown", "task failed"} {
		if strings.Contains(got, not) {
			t.Errorf("stillRunning = %q, has %s", got, not)
		}
	}
	if n := len(stillRunning(tasks)); n != 3 {
		t.Errorf("%d tasks block the stop, want 3", n)
	}
}
