package engine

import "errors"

// Sentinel errors returned by the engine. Callers test them with errors.Is.
var (
	// ErrUnknownField is returned when an expression or operator names a field the
	// input schema does not have.
	ErrUnknownField = errors.New("unknown field")
	// ErrType is returned when a value or expression has the wrong type.
	ErrType = errors.New("type mismatch")
	// ErrLateRecord marks a record dropped because its window or key is already
	// behind the watermark. It is counted, never returned from an epoch.
	ErrLateRecord = errors.New("late record")
	// ErrInvalidPlan is returned when a pipeline cannot be compiled.
	ErrInvalidPlan = errors.New("invalid pipeline")
	// ErrClosed is returned by an executor used after Close.
	ErrClosed = errors.New("executor closed")
)
