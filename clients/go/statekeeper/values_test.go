package statekeeper

import (
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

func sampleDocument() map[string]any {
	return map[string]any{
		"count":   3,
		"ratio":   0.5,
		"whole":   2.0,
		"big":     int64(math.MaxInt64),
		"neg":     int8(-7),
		"name":    "Zoë 🚀 名前",
		"nothing": nil,
		"flag":    true,
		"nested":  map[string]any{"list": []any{1, 2.5, "x", nil, []string{"a"}}},
		"typed":   map[string]int{"a": 1},
	}
}

func TestMsgpackRoundTripKeepsIntsAndFloatsApart(t *testing.T) {
	value, err := ToValue(sampleDocument(), EncodingMsgpack)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := value.GetKind().(*pb.Value_Msgpack); !ok {
		t.Fatalf("want the msgpack form, got %T", value.GetKind())
	}
	got, err := FromValue(value)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"count":   int64(3),
		"ratio":   0.5,
		"whole":   2.0,
		"big":     int64(math.MaxInt64),
		"neg":     int64(-7),
		"name":    "Zoë 🚀 名前",
		"nothing": nil,
		"flag":    true,
		"nested":  map[string]any{"list": []any{int64(1), 2.5, "x", nil, []any{"a"}}},
		"typed":   map[string]any{"a": int64(1)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, want)
	}
}

func TestJSONFormAppliesTheIntegerRule(t *testing.T) {
	value, err := ToValue(map[string]any{"count": 3, "ratio": 0.5, "whole": 2.0}, EncodingJSON)
	if err != nil {
		t.Fatal(err)
	}
	fields := value.GetJson().GetStructValue().GetFields()
	if fields["count"].GetNumberValue() != 3 || fields["ratio"].GetNumberValue() != 0.5 {
		t.Fatalf("unexpected JSON form %v", value)
	}
	got, err := FromValue(value)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"count": int64(3), "ratio": 0.5, "whole": int64(2)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v want %#v", got, want)
	}
}

func TestJSONFormRefusesIntegersItCannotCarry(t *testing.T) {
	if _, err := ToValue(int64(1)<<53+1, EncodingJSON); err == nil {
		t.Fatal("an integer beyond 2^53 must be refused in the JSON form")
	}
	if _, err := ToValue(int64(1)<<53+1, EncodingMsgpack); err != nil {
		t.Fatalf("the msgpack form carries every int64: %v", err)
	}
}

func TestBigJSONNumbersStayFloats(t *testing.T) {
	got, err := FromValue(&pb.Value{Kind: &pb.Value_Json{Json: structpb.NewNumberValue(1e20)}})
	if err != nil {
		t.Fatal(err)
	}
	if got != 1e20 {
		t.Fatalf("got %#v", got)
	}
}

func TestInvalidDocumentsAreRefused(t *testing.T) {
	for name, document := range map[string]any{
		"nan":       math.NaN(),
		"inf":       math.Inf(1),
		"reserved":  map[string]any{"$bytes": "AA=="},
		"int keys":  map[int]string{1: "a"},
		"func":      func() {},
		"nested ch": map[string]any{"c": make(chan int)},
	} {
		for _, encoding := range []Encoding{EncodingMsgpack, EncodingJSON} {
			if _, err := ToValue(document, encoding); err == nil {
				t.Errorf("%s (encoding %d): want an error", name, encoding)
			}
		}
	}
	deep := any("leaf")
	for range maxDepth + 2 {
		deep = []any{deep}
	}
	if _, err := ToValue(deep, EncodingMsgpack); err == nil {
		t.Error("a document nested too deep must be refused")
	}
}

func TestUnsetValueIsNil(t *testing.T) {
	got, err := FromValue(nil)
	if err != nil || got != nil {
		t.Fatalf("got %#v, %v", got, err)
	}
}

func TestParseAndFormatKeepTheNumberKinds(t *testing.T) {
	document, err := ParseDocument([]byte(`{"count": 3, "ratio": 0.5, "whole": 2.0, "e": 1e3,
		"huge": 18446744073709551615, "s": "ü", "l": [null, true]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"count": int64(3), "ratio": 0.5, "whole": 2.0, "e": 1000.0,
		"huge": uint64(math.MaxUint64), "s": "ü", "l": []any{nil, true},
	}
	if !reflect.DeepEqual(document, want) {
		t.Fatalf("got %#v", document)
	}
	text, err := FormatDocument(document)
	if err != nil {
		t.Fatal(err)
	}
	const wantText = `{"count":3,"e":1000.0,"huge":18446744073709551615,"l":[null,true],` +
		`"ratio":0.5,"s":"ü","whole":2.0}`
	if string(text) != wantText {
		t.Fatalf("got %s", text)
	}
}

func TestBytesRoundTripInBothForms(t *testing.T) {
	document := map[string]any{"blob": []byte{0, 255, 10}, "list": []any{[]byte{}}}
	for _, encoding := range []Encoding{EncodingMsgpack, EncodingJSON} {
		value, err := ToValue(document, encoding)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FromValue(value)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"blob": []byte{0, 255, 10}, "list": []any{[]byte{}}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("encoding %d: got %#v", encoding, got)
		}
	}
	value, err := ToValue([]byte{0, 255}, EncodingJSON)
	if err != nil {
		t.Fatal(err)
	}
	fields := value.GetJson().GetStructValue().GetFields()
	if len(fields) != 1 || fields["$bytes"].GetStringValue() != "AP8=" {
		t.Fatalf("want the {\"$bytes\": base64} object, got %v", value.GetJson())
	}
}

func TestBadBase64IsRefused(t *testing.T) {
	for _, text := range []string{`{"$bytes": "A"}`, `{"$bytes": 3}`, `{"$bytes": "AP8"}`} {
		if _, err := ParseDocument([]byte(text)); err == nil {
			t.Errorf("%s: want an error", text)
		}
	}
	document, err := ParseDocument([]byte(`{"b": {"$bytes": "AP8="}, "o": {"$bytes": "x", "y": 1}}`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := FormatDocument(document)
	if err != nil {
		t.Fatal(err)
	}
	if string(text) != `{"b":{"$bytes":"AP8="},"o":{"$bytes":"x","y":1}}` {
		t.Fatalf("got %s", text)
	}
}
