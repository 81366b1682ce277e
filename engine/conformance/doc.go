// Package conformance runs the Apache Spark conformance vectors against the
// engine. Each vector (see testdata/VECTORS.md for the exact semantics) is
// translated into the engine's real operators, built with the typed Go API, and
// run through the real executor, epoch by epoch, with a controlled batch time.
//
// # Running
//
//	go test ./engine/conformance -run TestSparkVectors -v
//
// runs one subtest per vector, named after the vector. The environment variable
// CONFORMANCE_VECTORS=<file> replaces testdata/spark_vectors.json with any file
// of the same format. The run ends with a line "N passed, N failed".
package conformance
