// Package container names the containers the worker acts on and describes what is needed
// to recreate one on another node (Spec). It holds only types and pure helpers; looking a
// container up in Docker is the job of the Inspector implementations (Docker, Fake).
package container
