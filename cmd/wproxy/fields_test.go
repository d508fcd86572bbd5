package main

import (
	"reflect"
	"strings"

	"github.com/wproxy/wproxy/core/config"
)

// configFields lists the YAML names of every configuration field: below
// the top level, and the top level's plain values (the sections have a
// heading of their own).
func configFields() []string {
	var names []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, top bool)
	walk = func(t reflect.Type, top bool) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() != reflect.TypeFor[config.Config]().PkgPath() {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			k := f.Type.Kind()
			if !top || (k != reflect.Struct && k != reflect.Slice && k != reflect.Map && k != reflect.Pointer) {
				names = append(names, tag)
			}
			walk(f.Type, false)
		}
	}
	walk(reflect.TypeFor[config.Config](), true)
	return names
}
