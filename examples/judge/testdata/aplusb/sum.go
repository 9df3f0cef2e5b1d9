// A correct solution: print the sum of two integers.
package main

import "fmt"

func main() {
	var a, b int
	if _, err := fmt.Scan(&a, &b); err != nil {
		panic(err)
	}
	fmt.Println(a + b)
}
