package node

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// Size caps of the frames each protocol reads.
const (
	// maxControlFrame caps small control messages (requests, statuses,
	// hellos, results without tensors).
	maxControlFrame = 64 << 10
	// maxChunk caps one upload chunk; uploads are sent in chunkSize pieces.
	maxChunk  = 1 << 20
	chunkSize = 256 << 10
	// maxTensorFrame caps a message carrying a tensor (an input or output
	// share, a plain input): 64 MiB, i.e. 8 M values.
	maxTensorFrame = 64 << 20
	// maxMPCFrame caps one engine message between holders.
	maxMPCFrame = 256 << 20
	// maxBundleFrame caps a dealer bundle or a deal request.
	maxBundleFrame = 512 << 20
	// maxUpload caps a whole upload (a model's share blob).
	maxUpload = 2 << 30
)

// errFrameTooLarge is returned for a frame whose announced length exceeds
// the reader's cap.
var errFrameTooLarge = errors.New("frame too large")

// frameReader reads uvarint-length-delimited frames from one stream. A
// stream has exactly one frameReader (it buffers ahead).
type frameReader struct{ br *bufio.Reader }

func newFrameReader(r io.Reader) *frameReader { return &frameReader{br: bufio.NewReader(r)} }

// next reads one frame of at most max bytes. Large frames are read into a
// growing buffer so that a peer announcing a huge frame and sending nothing
// makes us allocate nothing.
func (f *frameReader) next(max int) ([]byte, error) {
	n, err := f.length(max)
	if err != nil {
		return nil, err
	}
	if n <= 1<<20 {
		b := make([]byte, n)
		if _, err := io.ReadFull(f.br, b); err != nil {
			return nil, fmt.Errorf("read frame of %d bytes: %w", n, unexpected(err))
		}
		return b, nil
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, f.br, int64(n)); err != nil {
		return nil, fmt.Errorf("read frame of %d bytes: %w", n, unexpected(err))
	}
	return buf.Bytes(), nil
}

// length reads a frame's length, refusing one over max (errFrameTooLarge)
// before anything else is read; a stream that ends before it is io.EOF.
func (f *frameReader) length(max int) (uint64, error) {
	n, err := binary.ReadUvarint(f.br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("read frame length: %w", err)
	}
	if n > uint64(max) {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, max)
	}
	return n, nil
}

// readMsg reads one frame of at most max bytes and decodes it into m.
func (f *frameReader) readMsg(m proto.Message, max int) error {
	b, err := f.next(max)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode %T: %w", m, err)
	}
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// writeFrame writes b as one length-delimited frame, in one Write.
func writeFrame(w io.Writer, b []byte) error {
	buf := make([]byte, 0, binary.MaxVarintLen64+len(b))
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	buf = append(buf, b...)
	_, err := w.Write(buf)
	return err
}

// writeMsg encodes m and writes it as one frame.
func writeMsg(w io.Writer, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %T: %w", m, err)
	}
	return writeFrame(w, b)
}

// nextReserve is next with a reservation: reserve is called with the
// frame's announced size (after the cap check) before anything is read, so
// the resource manager can refuse a frame it has no memory for.
func (f *frameReader) nextReserve(max int, reserve func(int) error) ([]byte, error) {
	n, err := f.length(max)
	if err != nil {
		return nil, err
	}
	if err := reserve(int(n)); err != nil {
		return nil, fmt.Errorf("frame of %d bytes: %w", n, err)
	}
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, f.br, int64(n)); err != nil {
		return nil, fmt.Errorf("read frame of %d bytes: %w", n, unexpected(err))
	}
	return buf.Bytes(), nil
}

// protoUnmarshal decodes b into m with a typed error.
func protoUnmarshal(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode %T: %w", m, err)
	}
	return nil
}
