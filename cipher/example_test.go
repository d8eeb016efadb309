package cipher_test

import (
	"bytes"
	"fmt"
	"io"
	"net"

	"securechat/cipher"
)

// Both ends of a connection after the handshake: each sends with its own
// direction's secret and receives with the peer's.
func Example() {
	c2s := bytes.Repeat([]byte{1}, 32) // from the key schedule, PROTOCOL.md §8
	s2c := bytes.Repeat([]byte{2}, 32)
	a, b := net.Pipe()
	client := cipher.New(a, c2s, s2c, nil)
	server := cipher.New(b, s2c, c2s, nil)
	client.SetEstablished()
	server.SetEstablished()

	go func() {
		client.WriteMessages([][]byte{[]byte("hello"), []byte("world")})
		client.Close()
	}()
	for {
		msg, err := server.ReadMessage()
		if err == io.EOF {
			fmt.Println("clean end")
			break
		}
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Printf("%s\n", msg)
	}
	server.Close()
	// Output:
	// hello
	// world
	// clean end
}
