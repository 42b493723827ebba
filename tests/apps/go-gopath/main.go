package main // import "example.com/oldgo"

import (
	"fmt"
	"net/http"
	"os"

	"example.com/oldgo/pages"
	"example.com/shout"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, shout.Loud(pages.Home))
	})
	if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
