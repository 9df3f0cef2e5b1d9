// Allocates far more than the memory limit.
package main

import "fmt"

func main() {
	var a, b int
	fmt.Scan(&a, &b)
	var keep [][]byte
	for i := 0; i < 1024; i++ {
		chunk := make([]byte, 1<<20)
		for j := range chunk {
			chunk[j] = byte(j)
		}
		keep = append(keep, chunk)
	}
	fmt.Println(a+b, len(keep))
}
