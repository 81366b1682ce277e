package runner

import (
	"slices"

	"github.com/edgedio/edged/pipeline"
)

// DefaultPartitions is the number of partitions of a partitioned pipeline
// when the node config does not say.
const DefaultPartitions = 8

// PartitionOf returns the partition of a record key among n: FNV-1a (64-bit)
// of the key, modulo n. It is stable across versions, architectures and
// restarts: the mesh and the stored state both depend on it.
func PartitionOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return int(h % uint64(n))
}

// Partitionable reports whether a pipeline's state can be split by record
// key: every source declares the same key fields K, no step rewrites a
// field of K, and every stateful step groups by fields that include all of
// K (so records that share a group share a key, and so a partition). A
// step without explicit keys, or counting over all records, is global: the
// pipeline then runs as one partition.
func Partitionable(s *pipeline.Spec) bool {
	srcs := s.Spec.Sources
	if len(srcs) == 0 || len(srcs[0].Key) == 0 {
		return false
	}
	k := srcs[0].Key
	for _, src := range srcs[1:] {
		if !slices.Equal(src.Key, k) {
			return false
		}
	}
	covers := func(keys []string) bool {
		if len(keys) == 0 {
			return false
		}
		for _, f := range k {
			if !slices.Contains(keys, f) {
				return false
			}
		}
		return true
	}
	redefines := func(exprs []pipeline.NamedExpr) bool {
		for _, e := range exprs {
			for name := range e {
				if slices.Contains(k, name) {
					return true
				}
			}
		}
		return false
	}
	one := func(key string) []string {
		if key == "" {
			return nil
		}
		return []string{key}
	}
	for i := range s.Spec.Steps {
		st := &s.Spec.Steps[i]
		switch {
		case st.Project != nil:
			// A projection keeps only what it names: a key field must be
			// carried through unchanged (name: name).
			kept := 0
			for _, e := range st.Project {
				for name, ex := range e {
					if slices.Contains(k, name) {
						if ex != name {
							return false
						}
						kept++
					}
				}
			}
			if kept < len(k) {
				return false
			}
		case st.Extend != nil && redefines(st.Extend):
			return false
		case st.FlatMap != nil:
			for _, row := range st.FlatMap {
				if redefines(row) {
					return false
				}
			}
		case st.KeyBy != nil && !covers(st.KeyBy):
			return false
		case st.Window != nil && !covers(st.Window.Keys):
			return false
		case st.Aggregate != nil && !covers(st.Aggregate.Keys):
			return false
		case st.Threshold != nil && !covers(st.Threshold.Keys):
			return false
		case st.RateOfChange != nil && !covers(st.RateOfChange.Keys):
			return false
		case st.NOfM != nil && !covers(st.NOfM.Keys):
			return false
		case st.Anomaly != nil && !covers(st.Anomaly.Keys):
			return false
		case st.Dedup != nil && !covers(st.Dedup.Keys):
			return false
		case st.Reduce != nil && !covers(one(st.Reduce.Key)):
			return false
		case st.DStream != nil && !covers(one(st.DStream.Key)):
			return false
		case st.UpdateState != nil && !covers(one(st.UpdateState.Key)):
			return false
		case st.CountByValue != nil:
			return false
		}
	}
	return true
}

// processingTime reports whether a pipeline has DStream-style steps whose
// results depend on the epochs themselves (processing-time windows,
// per-batch reduceByKey and countByValue, updateStateByKey with its
// timeouts): they need one epoch per interval.
func processingTime(s *pipeline.Spec) bool {
	for i := range s.Spec.Steps {
		st := &s.Spec.Steps[i]
		if st.DStream != nil || st.Reduce != nil || st.CountByValue != nil || st.UpdateState != nil {
			return true
		}
	}
	return false
}
