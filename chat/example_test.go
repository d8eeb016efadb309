package chat_test

import (
	"errors"
	"fmt"

	"securechat/chat"
)

// A client turns a typed line into a request and encodes it for one APP
// record.
func ExampleParseLine() {
	req, err := chat.ParseLine("/msg Bob see you at 5", "#general")
	if err != nil {
		panic(err)
	}
	req.ID = "c-1"
	p, _ := chat.EncodeRequest(req)
	fmt.Println(string(p))
	// Output: {"t":"msg","id":"c-1","to":"bob","text":"see you at 5"}
}

// A line that does not fit its command is not sent: the client shows the
// usage line as an error.
func ExampleUsageError() {
	_, err := chat.ParseLine("/msg bob", "#general")
	var ue *chat.UsageError
	if errors.As(err, &ue) {
		fmt.Printf("error: %v\n", err)
		fmt.Println(ue.Usage)
	}
	// Output:
	// error: usage: /msg NAME TEXT
	// /msg NAME TEXT
}

// A client decodes what the server sent and sanitises text before
// printing it.
func ExampleDecodeEvent() {
	e, err := chat.DecodeEvent([]byte(`{"t":"msg","mid":7,"ts":"2026-11-25T10:00:00.000Z","kind":"msg","room":"#general","from":"bob","text":"hi \u001b[2Jthere","future":1}`))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %s <%s> %s\n", e.TS[11:16], e.Room, e.From, chat.SanitizeText(e.Text))
	// Output: 10:00 #general <bob> hi there
}
