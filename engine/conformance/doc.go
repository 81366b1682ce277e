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
// of the same format (a relative path is taken from the module root when it
// does not exist from the package directory). The run ends with a line
// "N passed, N failed".
//
// # Relaxed vectors
//
// A vector with compare "relaxed" carries relaxed_checks instead of expected
// and expected_state_snapshots (Spark finds mapWithState timeouts only in
// periodic full scans, so the batch a timeout fires at is not fixed): every
// check present must hold, and outputs may appear only at expected_times_s.
// testdata/relaxed_vectors.json holds such vectors.
package conformance
