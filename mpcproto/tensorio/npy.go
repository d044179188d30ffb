package tensorio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

var npyMagic = []byte("\x93NUMPY")

// ParseNPY reads a NumPy .npy file (format versions 1 to 3) holding
// little-endian float32 or float64 values in C order, as numpy.save writes
// them. Fortran order, big-endian data and other dtypes are refused.
func ParseNPY(b []byte) (*tensor.Dense[float64], error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("npy: %d bytes exceeds the limit of %d", len(b), MaxBytes)
	}
	if len(b) < 10 || !bytes.Equal(b[:6], npyMagic) {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	major := b[6]
	var hlen, off int
	switch major {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, errors.New("npy: truncated header")
		}
		h := binary.LittleEndian.Uint32(b[8:12])
		if h > MaxBytes {
			return nil, fmt.Errorf("npy: header length %d too large", h)
		}
		hlen, off = int(h), 12
	default:
		return nil, fmt.Errorf("npy: format version %d.%d is not supported", major, b[7])
	}
	if off+hlen > len(b) {
		return nil, errors.New("npy: truncated header")
	}
	h, err := parseHeader(string(b[off : off+hlen]))
	if err != nil {
		return nil, fmt.Errorf("npy: header: %w", err)
	}
	if h.fortran {
		return nil, errors.New("npy: Fortran-order arrays are not supported (save np.ascontiguousarray(x))")
	}
	var width int
	switch h.descr {
	case "<f4":
		width = 4
	case "<f8":
		width = 8
	case ">f4", ">f8":
		return nil, fmt.Errorf("npy: big-endian dtype %s is not supported (use little-endian float32 or float64)", h.descr)
	default:
		return nil, fmt.Errorf("npy: dtype %s is not supported (want float32 <f4 or float64 <f8)", h.descr)
	}
	for _, d := range h.shape {
		if d <= 0 {
			return nil, fmt.Errorf("npy: shape %v has an empty dimension", h.shape)
		}
	}
	n := 1
	for _, d := range h.shape {
		if n > MaxBytes/d {
			return nil, fmt.Errorf("npy: shape %v is too large", h.shape)
		}
		n *= d
	}
	body := b[off+hlen:]
	if len(body) != n*width {
		return nil, fmt.Errorf("npy: shape %v of %s needs %d bytes of data, got %d", h.shape, h.descr, n*width, len(body))
	}
	data := make([]float64, n)
	for i := range data {
		if width == 4 {
			data[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:])))
		} else {
			data[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[8*i:]))
		}
	}
	t, err := FromFlat(data, h.shape)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	return t, nil
}

type npyHeader struct {
	descr   string
	fortran bool
	shape   []int
}

// parseHeader reads the Python dict literal of a .npy header, such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (4, 64), }.
func parseHeader(s string) (*npyHeader, error) {
	p := &litParser{s: strings.TrimSpace(s)}
	if !p.eat('{') {
		return nil, errors.New("want a dict")
	}
	h := &npyHeader{}
	seen := map[string]bool{}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat(':') {
			return nil, fmt.Errorf("want ':' after key %q", key)
		}
		p.space()
		switch key {
		case "descr":
			if h.descr, err = p.str(); err != nil {
				return nil, fmt.Errorf("descr: %w", err)
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				h.fortran = true
			case p.word("False"):
			default:
				return nil, errors.New("fortran_order: want True or False")
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return nil, fmt.Errorf("shape: %w", err)
			}
		default:
			return nil, fmt.Errorf("unknown key %q", key)
		}
		seen[key] = true
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat('}') {
				return nil, errors.New("want ',' or '}'")
			}
			break
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("missing key %q", k)
		}
	}
	return h, nil
}

type litParser struct {
	s string
	i int
}

func (p *litParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *litParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *litParser) word(w string) bool {
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

func (p *litParser) str() (string, error) {
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

// tuple reads a tuple of non-negative ints: (), (3,), (4, 64).
func (p *litParser) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("want a tuple")
	}
	shape := []int{}
	for {
		p.space()
		if p.eat(')') {
			return shape, nil
		}
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if start == p.i || p.i-start > 9 {
			return nil, errors.New("want a dimension")
		}
		d, _ := strconv.Atoi(p.s[start:p.i])
		shape = append(shape, d)
		if len(shape) > 32 {
			return nil, errors.New("too many dimensions")
		}
		p.space()
		if !p.eat(',') {
			p.space()
			if !p.eat(')') {
				return nil, errors.New("want ',' or ')'")
			}
			return shape, nil
		}
	}
}
