// Wrong on negative numbers.
package main

import "fmt"

func main() {
	var a, b int
	fmt.Scan(&a, &b)
	if b < 0 {
		b = -b
	}
	fmt.Println(a + b)
}
