// Package pages is imported by its GOPATH import path.
package pages

// Home is the home page.
const Home = "hello from a gopath app"
