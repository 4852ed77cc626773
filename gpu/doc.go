// Package gpu holds no code of its own: its subpackages produce the GPU
// load signals (collector, scrape, report) and turn them into weights
// (score). They import nothing from l7/: the L7 gateway consumes these
// signals (l7/pick), never the other way round. deps_test.go keeps it so.
package gpu
