// Package greet is a tiny local module, vendored.
package greet

// Hello says hello.
func Hello() string { return "hello from the vendored greet module" }
