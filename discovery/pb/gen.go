// Package pb holds the generated protobuf types of the discovery package.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative manifest.proto
