// Package shout is vendored GOPATH-style (no modules.txt).
package shout

import "strings"

// Loud upper-cases.
func Loud(s string) string { return strings.ToUpper(s) }
