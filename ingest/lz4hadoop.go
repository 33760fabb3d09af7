package ingest

import (
	"encoding/binary"
	"errors"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/pierrec/lz4/v4"
)

// arrow-go reads LZ4_RAW but not the deprecated LZ4 codec, which arrow-rs,
// parquet-cpp and parquet-mr wrote (and still write when asked for "LZ4"):
// LZ4 blocks in Hadoop's framing, or, from some older writers, one bare
// LZ4 block. Like Arrow C++, the Hadoop framing is tried first and a bare
// block second. Registering it is global to arrow-go in this process.
func init() {
	compress.RegisterCodec(compress.Codecs.Lz4, lz4Hadoop{})
}

type lz4Hadoop struct{}

var errLZ4Frame = errors.New("lz4: corrupt hadoop frame")

// DecodeWithError decompresses src into dst, whose length is the page's
// uncompressed size.
func (lz4Hadoop) DecodeWithError(dst, src []byte) ([]byte, error) {
	if out, err := decodeHadoopLZ4(dst, src); err == nil {
		return out, nil
	}
	n, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// decodeHadoopLZ4 decodes blocks each prefixed by their big-endian
// decompressed and compressed sizes.
func decodeHadoopLZ4(dst, src []byte) ([]byte, error) {
	total := 0
	for len(src) > 0 {
		if len(src) < 8 {
			return nil, errLZ4Frame
		}
		ulen, clen := int(binary.BigEndian.Uint32(src)), int(binary.BigEndian.Uint32(src[4:]))
		src = src[8:]
		if clen > len(src) || ulen > len(dst)-total {
			return nil, errLZ4Frame
		}
		n, err := lz4.UncompressBlock(src[:clen], dst[total:total+ulen])
		if err != nil || n != ulen {
			return nil, errLZ4Frame
		}
		total, src = total+n, src[clen:]
	}
	return dst[:total], nil
}

func (c lz4Hadoop) Decode(dst, src []byte) []byte {
	out, err := c.DecodeWithError(dst, src)
	if err != nil {
		panic(err)
	}
	return out
}

// Encode writes one Hadoop-framed block (privsync does not write this
// codec; Codec requires it).
func (c lz4Hadoop) Encode(dst, src []byte) []byte {
	bound := int(c.CompressBound(int64(len(src))))
	if cap(dst) < bound {
		dst = make([]byte, bound)
	}
	dst = dst[:bound]
	n, err := lz4.CompressBlock(src, dst[8:], nil)
	if err != nil {
		panic(err)
	}
	binary.BigEndian.PutUint32(dst, uint32(len(src)))
	binary.BigEndian.PutUint32(dst[4:], uint32(n))
	return dst[:8+n]
}

func (c lz4Hadoop) EncodeLevel(dst, src []byte, _ int) []byte { return c.Encode(dst, src) }

func (lz4Hadoop) CompressBound(n int64) int64 { return 8 + int64(lz4.CompressBlockBound(int(n))) }
