package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"

	"example.com/greet"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from a go module app (%s)\n", greet.Hello(), runtime.Version())
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
