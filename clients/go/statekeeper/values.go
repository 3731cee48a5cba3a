package statekeeper

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// Encoding selects the wire form of the documents a Client sends and asks for.
//
// The statekeeper document model has maps with string keys, lists, strings, booleans, null,
// 64-bit integers, 64-bit floats and binary data. Read back, a document is made of
// map[string]any, []any, string, bool, nil, int64 (uint64 only above math.MaxInt64), float64
// and []byte.
//
// The JSON form has no bytes: it carries a []byte as the object {"$bytes": "<standard, padded
// base64>"} (docs/values.md), which ToValue writes and FromValue reads back as a []byte. A map
// whose only member is "$bytes" is therefore reserved for binary data and refused as a document.
type Encoding int

const (
	// EncodingMsgpack sends and reads the exact MessagePack form: an int64 stays an int64 and a
	// float64 stays a float64 (3.0 is read back as float64(3)). This is the default.
	EncodingMsgpack Encoding = iota
	// EncodingJSON sends and reads the google.protobuf.Value (JSON) form, the form grpcurl uses.
	// JSON has one number type, so the server applies the documented rule: a number that is
	// integral and within +/-2^53 is stored as an integer, every other number as a float. A
	// float64 such as 3.0 therefore becomes the integer 3, and integers beyond 2^53 are refused
	// by ToValue because a JSON number cannot carry them exactly.
	EncodingJSON
)

// maxExactInt is the largest integer magnitude that a float64 (a JSON number) holds exactly.
const maxExactInt = 1 << 53

// maxDepth is the deepest nesting of lists and maps that the server accepts.
const maxDepth = 64

// BytesMember is the only member of the JSON-form object that stands for binary data.
const BytesMember = "$bytes"

// isBytesObject reports whether a map has "$bytes" as its only member.
func isBytesObject[V any](m map[string]V) bool {
	_, ok := m[BytesMember]
	return ok && len(m) == 1
}

// decodeBytes reads the base64 text of a {"$bytes": ...} object.
func decodeBytes(text string) ([]byte, error) {
	data, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("statekeeper: %q must be a string of standard, padded base64: %w",
			BytesMember, err)
	}
	return data, nil
}

// ToValue converts a Go document into the wire Value in the given encoding.
//
// Accepted Go types: nil, bool, string, []byte, every signed and unsigned integer type, float32,
// float64, json.Number, and slices, arrays and string-keyed maps of those (map[string]any and
// []any most commonly). NaN and infinities are refused, like the server refuses them.
func ToValue(document any, encoding Encoding) (*pb.Value, error) {
	normal, err := normalize(document, 0)
	if err != nil {
		return nil, err
	}
	if encoding == EncodingJSON {
		jsonValue, err := toJSONValue(normal)
		if err != nil {
			return nil, err
		}
		return &pb.Value{Kind: &pb.Value_Json{Json: jsonValue}}, nil
	}
	var buffer bytes.Buffer
	encoder := msgpack.NewEncoder(&buffer)
	encoder.UseCompactInts(true)
	encoder.SetSortMapKeys(true)
	if err := encoder.Encode(normal); err != nil {
		return nil, fmt.Errorf("statekeeper: encoding a document as MessagePack: %w", err)
	}
	return &pb.Value{Kind: &pb.Value_Msgpack{Msgpack: buffer.Bytes()}}, nil
}

// FromValue converts a wire Value (either form) into a Go document; an unset Value is nil.
//
// Integers come back as int64 (uint64 only above math.MaxInt64) and floats as float64. From the
// JSON form, a number that is integral and within +/-2^53 is an int64, like the server reads it.
func FromValue(value *pb.Value) (any, error) {
	switch kind := value.GetKind().(type) {
	case *pb.Value_Msgpack:
		var decoded any
		if err := msgpack.Unmarshal(kind.Msgpack, &decoded); err != nil {
			return nil, fmt.Errorf("statekeeper: decoding a MessagePack document: %w", err)
		}
		return fromMsgpack(decoded)
	case *pb.Value_Json:
		return fromJSONValue(kind.Json)
	default:
		return nil, nil
	}
}

// normalize checks a document against the model and rewrites it into the canonical Go types
// (int64, uint64, float64, string, bool, nil, []any, map[string]any).
func normalize(document any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("statekeeper: document nested deeper than %d levels", maxDepth)
	}
	switch v := document.(type) {
	case nil:
		return nil, nil
	case bool, string, int64, []byte:
		return v, nil
	case int:
		return int64(v), nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case uint:
		return normalizeUint(uint64(v)), nil
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		return normalizeUint(v), nil
	case float32:
		return checkFloat(float64(v))
	case float64:
		return checkFloat(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("statekeeper: invalid number %q", string(v))
		}
		return checkFloat(f)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			n, err := normalize(item, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		if isBytesObject(v) {
			return nil, fmt.Errorf("statekeeper: a map whose only member is %q is reserved for "+
				"binary data", BytesMember)
		}
		out := make(map[string]any, len(v))
		for key, item := range v {
			n, err := normalize(item, depth+1)
			if err != nil {
				return nil, err
			}
			out[key] = n
		}
		return out, nil
	}
	return normalizeReflect(reflect.ValueOf(document), depth)
}

func normalizeUint(v uint64) any {
	if v <= math.MaxInt64 {
		return int64(v)
	}
	return v
}

func checkFloat(f float64) (any, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("statekeeper: NaN and infinity are not allowed in a document")
	}
	return f, nil
}

// normalizeReflect handles typed slices, arrays, maps and pointers (e.g. []string,
// map[string]int, *T) that the type switch of normalize does not list.
func normalizeReflect(v reflect.Value, depth int) (any, error) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, nil
		}
		return normalize(v.Elem().Interface(), depth)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Bytes(), nil
		}
		out := make([]any, v.Len())
		for i := range out {
			n, err := normalize(v.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("statekeeper: map keys must be strings, not %s", v.Type().Key())
		}
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			n, err := normalize(iter.Value().Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[iter.Key().String()] = n
		}
		return out, nil
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.String:
		return v.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return normalizeUint(v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return checkFloat(v.Float())
	}
	return nil, fmt.Errorf("statekeeper: unsupported document type %s", v.Type())
}

func toJSONValue(normal any) (*structpb.Value, error) {
	switch v := normal.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case bool:
		return structpb.NewBoolValue(v), nil
	case string:
		return structpb.NewStringValue(v), nil
	case int64:
		if v > maxExactInt || v < -maxExactInt {
			return nil, fmt.Errorf("statekeeper: integer %d is beyond +/-2^53: the JSON form "+
				"cannot carry it exactly, use EncodingMsgpack", v)
		}
		return structpb.NewNumberValue(float64(v)), nil
	case uint64:
		return nil, fmt.Errorf("statekeeper: integer %d is beyond +/-2^53: the JSON form "+
			"cannot carry it exactly, use EncodingMsgpack", v)
	case float64:
		return structpb.NewNumberValue(v), nil
	case []byte:
		return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			BytesMember: structpb.NewStringValue(base64.StdEncoding.EncodeToString(v)),
		}}), nil
	case []any:
		values := make([]*structpb.Value, len(v))
		for i, item := range v {
			converted, err := toJSONValue(item)
			if err != nil {
				return nil, err
			}
			values[i] = converted
		}
		return structpb.NewListValue(&structpb.ListValue{Values: values}), nil
	case map[string]any:
		fields := make(map[string]*structpb.Value, len(v))
		for key, item := range v {
			converted, err := toJSONValue(item)
			if err != nil {
				return nil, err
			}
			fields[key] = converted
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields}), nil
	}
	return nil, fmt.Errorf("statekeeper: unsupported document type %T", normal)
}

func fromJSONValue(value *structpb.Value) (any, error) {
	switch kind := value.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return nil, nil
	case *structpb.Value_BoolValue:
		return kind.BoolValue, nil
	case *structpb.Value_StringValue:
		return kind.StringValue, nil
	case *structpb.Value_NumberValue:
		n := kind.NumberValue
		if n == math.Trunc(n) && n >= -maxExactInt && n <= maxExactInt {
			return int64(n), nil
		}
		return n, nil
	case *structpb.Value_ListValue:
		out := make([]any, len(kind.ListValue.GetValues()))
		for i, item := range kind.ListValue.GetValues() {
			converted, err := fromJSONValue(item)
			if err != nil {
				return nil, err
			}
			out[i] = converted
		}
		return out, nil
	case *structpb.Value_StructValue:
		if fields := kind.StructValue.GetFields(); isBytesObject(fields) {
			text, ok := fields[BytesMember].GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("statekeeper: %q must be a string of base64", BytesMember)
			}
			return decodeBytes(text.StringValue)
		}
		out := make(map[string]any, len(kind.StructValue.GetFields()))
		for key, item := range kind.StructValue.GetFields() {
			converted, err := fromJSONValue(item)
			if err != nil {
				return nil, err
			}
			out[key] = converted
		}
		return out, nil
	}
	return nil, fmt.Errorf("statekeeper: unknown JSON value kind %T", value.GetKind())
}

// fromMsgpack rewrites what the MessagePack decoder returns into the canonical Go types.
func fromMsgpack(decoded any) (any, error) {
	switch v := decoded.(type) {
	case nil, bool, string, float64, int64:
		return v, nil
	case int8:
		return int64(v), nil
	case int16:
		return int64(v), nil
	case int32:
		return int64(v), nil
	case int:
		return int64(v), nil
	case uint8:
		return int64(v), nil
	case uint16:
		return int64(v), nil
	case uint32:
		return int64(v), nil
	case uint64:
		return normalizeUint(v), nil
	case float32:
		return float64(v), nil
	case []byte:
		return v, nil
	case []any, map[string]any:
		return mapChildren(v, fromMsgpack)
	}
	return nil, fmt.Errorf("statekeeper: unsupported MessagePack type %T", decoded)
}

// mapChildren replaces, in place, every item of a list or every value of a map by
// convert(item), and returns the container; any other node is returned unchanged.
func mapChildren(node any, convert func(any) (any, error)) (any, error) {
	switch v := node.(type) {
	case []any:
		for i, item := range v {
			converted, err := convert(item)
			if err != nil {
				return nil, err
			}
			v[i] = converted
		}
	case map[string]any:
		for key, item := range v {
			converted, err := convert(item)
			if err != nil {
				return nil, err
			}
			v[key] = converted
		}
	}
	return node, nil
}

// ParseDocument parses JSON text into a document, keeping the integer/float distinction of
// the text: a number written without a fraction or exponent is an int64 (uint64 above
// math.MaxInt64), every other number a float64, and an object {"$bytes": "<base64>"} is a
// []byte. It is the inverse of FormatDocument.
func ParseDocument(text []byte) (any, error) {
	decoder := json.NewDecoder(bytes.NewReader(text))
	decoder.UseNumber()
	var raw any
	if err := decoder.Decode(&raw); err != nil {
		return nil, fmt.Errorf("statekeeper: parsing a JSON document: %w", err)
	}
	return parseNumbers(raw)
}

func parseNumbers(raw any) (any, error) {
	switch v := raw.(type) {
	case json.Number:
		text := string(v)
		if !bytes.ContainsAny([]byte(text), ".eE") {
			if i, err := strconv.ParseInt(text, 10, 64); err == nil {
				return i, nil
			}
			if u, err := strconv.ParseUint(text, 10, 64); err == nil {
				return u, nil
			}
			return nil, fmt.Errorf("statekeeper: integer %s is out of the 64-bit range", text)
		}
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("statekeeper: invalid number %s", text)
		}
		return f, nil
	case map[string]any:
		if isBytesObject(v) {
			text, ok := v[BytesMember].(string)
			if !ok {
				return nil, fmt.Errorf("statekeeper: %q must be a string of base64", BytesMember)
			}
			return decodeBytes(text)
		}
	}
	return mapChildren(raw, parseNumbers)
}

// FormatDocument renders a document as JSON text with sorted keys in which every float has a
// fraction or an exponent (3.0 is written "3.0"), so that the integer/float distinction
// survives the text: Python's json.loads reads "3" as int and "3.0" as float. A []byte is
// written as {"$bytes": "<base64>"}.
func FormatDocument(document any) ([]byte, error) {
	var buffer bytes.Buffer
	if err := formatInto(&buffer, document); err != nil {
		return nil, err
	}
	return buffer.Bytes(), nil
}

func formatInto(buffer *bytes.Buffer, document any) error {
	normal, err := normalize(document, 0)
	if err != nil {
		return err
	}
	switch v := normal.(type) {
	case nil:
		buffer.WriteString("null")
	case bool:
		buffer.WriteString(strconv.FormatBool(v))
	case string:
		encoded, _ := json.Marshal(v)
		buffer.Write(encoded)
	case []byte:
		encoded, _ := json.Marshal(base64.StdEncoding.EncodeToString(v))
		fmt.Fprintf(buffer, "{%q:%s}", BytesMember, encoded)
	case int64:
		buffer.WriteString(strconv.FormatInt(v, 10))
	case uint64:
		buffer.WriteString(strconv.FormatUint(v, 10))
	case float64:
		text := strconv.FormatFloat(v, 'g', -1, 64)
		if !bytes.ContainsAny([]byte(text), ".eE") {
			text += ".0"
		}
		buffer.WriteString(text)
	case []any:
		buffer.WriteByte('[')
		for i, item := range v {
			if i > 0 {
				buffer.WriteByte(',')
			}
			if err := formatInto(buffer, item); err != nil {
				return err
			}
		}
		buffer.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for key := range v {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		buffer.WriteByte('{')
		for i, key := range keys {
			if i > 0 {
				buffer.WriteByte(',')
			}
			encoded, _ := json.Marshal(key)
			buffer.Write(encoded)
			buffer.WriteByte(':')
			if err := formatInto(buffer, v[key]); err != nil {
				return err
			}
		}
		buffer.WriteByte('}')
	}
	return nil
}
