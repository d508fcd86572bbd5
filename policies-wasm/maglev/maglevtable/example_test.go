package maglevtable_test

import (
	"fmt"

	"github.com/wproxy/wproxy/policies-wasm/maglev/maglevtable"
)

func Example() {
	backends := []maglevtable.Backend{
		{Name: "10.0.0.1:80", Weight: 1},
		{Name: "10.0.0.2:80", Weight: 1},
		{Name: "10.0.0.3:80", Weight: 2},
	}
	var b maglevtable.Builder
	table, err := b.Build(backends, 65537, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	counts := make([]int, len(backends))
	for _, idx := range table {
		counts[idx]++
	}
	fmt.Println("entries per backend:", counts)

	// The same backends in another order map every hash to the same name.
	reordered := []maglevtable.Backend{backends[2], backends[0], backends[1]}
	other, _ := maglevtable.Build(reordered, 65537, nil)
	hash := uint64(0x243f6a8885a308d3) // the request's key hash
	fmt.Println(backends[maglevtable.Lookup(table, hash)].Name == reordered[maglevtable.Lookup(other, hash)].Name)

	_, err = b.Build(backends, 65536, table)
	fmt.Println(err)
	// Output:
	// entries per backend: [16385 16384 32768]
	// true
	// maglevtable: table size 65536 is not prime
}

func ExampleWalker() {
	backends := []maglevtable.Backend{{Name: "a:80"}, {Name: "b:80"}, {Name: "c:80"}, {Name: "d:80"}}
	table, _ := maglevtable.Build(backends, 251, nil)
	load := []int{9, 0, 9, 9} // in-flight requests; the bound is 5
	var w maglevtable.Walker
	var order []string
	chosen := w.Walk(table, len(backends), 42, func(idx int32) bool {
		order = append(order, backends[idx].Name)
		return load[idx] < 5
	})
	fmt.Println(order, "→", backends[chosen].Name)
	// Output:
	// [d:80 c:80 a:80 b:80] → b:80
}
