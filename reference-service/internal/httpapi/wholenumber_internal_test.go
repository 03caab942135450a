package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// The contract types quantity and unit_price_minor as JSON Schema integers, which admit 2.0 and
// 2e0; the service reads them as the same order as 2. Anything else keeps failing as a type
// error naming the field.
func TestWholeNumbersInEveryNotation(t *testing.T) {
	for in, want := range map[string]int64{
		`2`: 2, `2.0`: 2, `2e0`: 2, `6.74e2`: 674, `1E3`: 1000, `-0.0`: 0, `100000000.000`: 100000000,
		`9223372036854775807`: 9223372036854775807,
	} {
		var got struct {
			Q *wholeNumber `json:"q"`
		}
		if err := json.Unmarshal([]byte(`{"q":`+in+`}`), &got); err != nil || got.Q == nil || int64(*got.Q) != want {
			t.Errorf("%s: got %v, %v; want %d", in, got.Q, err, want)
		}
	}
	for _, in := range []string{`2.5`, `"2"`, `1e19`, `9223372036854775808`, `-9.3e18`, `true`, `{}`, `[1]`} {
		var dst itemDTO
		dec := json.NewDecoder(bytes.NewReader([]byte(`{"quantity":` + in + `}`)))
		dec.DisallowUnknownFields()
		err := dec.Decode(&dst)
		var typ *json.UnmarshalTypeError
		if !errors.As(err, &typ) {
			t.Errorf("%s: %v, want a type error", in, err)
			continue
		}
		var ee *edgeError
		if !errors.As(jsonProblem(err), &ee) || len(ee.params) != 1 || ee.params[0].Name != "quantity" {
			t.Errorf("%s: %v, want a problem naming quantity", in, jsonProblem(err))
		}
	}
	var dst itemDTO
	if err := json.Unmarshal([]byte(`{"quantity":null}`), &dst); err != nil || dst.Quantity != nil {
		t.Errorf("null: %v, %v; want a missing field", dst.Quantity, err)
	}
}
