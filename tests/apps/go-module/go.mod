// A module app with one vendored dependency: builds offline with -mod=vendor.
module example.com/gohello

go 1.22

toolchain go1.99.0

require example.com/greet v1.0.0
