// The Complement deployment shim is copied into a Complement checkout and built
// there (build tag parley_complement). This go.mod keeps it out of Parley's
// module, so that `go mod tidy` and `go build ./...` at the root ignore it.
module parley.invalid/sytest/complement

go 1.27
