// Package configs embeds the example pipelines into the edged binary, so that
// `edged run` with no configuration starts on them.
package configs

import "embed"

// Pipelines holds configs/pipelines/*.yaml, under the directory "pipelines".
//
//go:embed pipelines/*.yaml
var Pipelines embed.FS
