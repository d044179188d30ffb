// Package pb holds the protobuf wire messages of the node's stream
// protocols (grid.proto; repair.proto for /grid/repair/1.0.0) and their
// generated code.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative grid.proto repair.proto
