package featurestore.job;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;

import org.apache.flink.avro.shaded.org.apache.avro.io.BinaryDecoder;
import org.apache.flink.avro.shaded.org.apache.avro.io.Decoder;
import org.apache.flink.avro.shaded.org.apache.avro.util.Utf8;

/**
 * A {@link BinaryDecoder} held to fastavro's reading (the Python decoder's library) where Avro's Java reader is
 * laxer or riskier, so that a corrupt record is refused, never decoded from bytes read twice or allowed to allocate
 * more than the record holds.
 *
 * <ul>
 *   <li>A string or bytes length (read or skipped) must be between 0 and the bytes left: Avro skips a negative
 *       length by moving backwards and allocates a read's buffer before it finds the data short.
 *   <li>A writer-only array or map block with a negative item count is skipped by its byte size (as fastavro does);
 *       the size must be between 0 and the bytes left. Blocks with a positive count are skipped item by item.
 *   <li>An array or map block may not claim more items than the bytes left: an item takes at least a byte, except
 *       an item of a type holding no data (null, an empty record, a size-0 fixed), whose count alone would loop the
 *       reader (2^62 nulls in a 46-byte record) without reading a byte; {@code udfs/avro_ints.py} refuses it alike.
 *   <li>Every varint (a long, length, item count or block size, int or index, read or skipped) is read here byte by
 *       byte and refused past 10 bytes or with bits beyond 64: Avro's reader drops those bits (an int written as
 *       2^64 + 5 read as 5), fastavro drops or wraps them, and {@code udfs/avro_ints.py} refuses them alike.
 *   <li>An int, enum index or union index must fit 32 bits: Avro's reader stops at 5 bytes and drops the high
 *       bits, fastavro reads the whole varint. An enum or union index must not be negative (fastavro, in Python,
 *       would take a symbol or branch from the end; {@code udfs/avro_ints.py} refuses it).
 *   <li>A boolean is true for any non-zero byte (fastavro), not only for 1.
 * </ul>
 */
final class CheckedDecoder extends Decoder {
    private final BinaryDecoder in;
    private final byte[] one = new byte[1];

    CheckedDecoder(BinaryDecoder in) {
        this.in = in;
    }

    /** Bytes left after what was read. */
    int remaining() throws IOException {
        return in.inputStream().available();
    }

    /** A zigzag varint of at most 10 bytes and 64 bits. */
    private long varint() throws IOException {
        long raw = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            in.readFixed(one, 0, 1);
            int b = one[0] & 0xff;
            if (shift == 63 && b > 1) { // the 10th byte holds bit 63 only, and ends the varint
                throw new IOException("malformed data: a varint longer than 64 bits");
            }
            raw |= (long) (b & 0x7f) << shift;
            if ((b & 0x80) == 0) {
                return (raw >>> 1) ^ -(raw & 1);
            }
        }
        throw new IllegalStateException("unreachable: the 10th byte ends the varint or is refused");
    }

    /** An array or map block's item count, as Avro reads it: a negative count is followed by the block's size. */
    private long itemCount() throws IOException {
        long count = varint();
        if (count < 0) {
            varint();
            count = -count;
        }
        return atMostBytesLeft(count);
    }

    /** ``count`` items, refused when more than the bytes left (see the class comment). */
    private long atMostBytesLeft(long count) throws IOException {
        if (count < 0 || count > remaining()) { // -2^63 stays negative when negated
            throw new IOException("malformed data: a block of " + count + " items with " + remaining() + " bytes left");
        }
        return count;
    }

    private int index(String what) throws IOException {
        int value = int32();
        if (value < 0) {
            throw new IOException("malformed data: " + what + " index " + value);
        }
        return value;
    }

    private int length() throws IOException {
        long length = varint();
        if (length < 0) {
            throw new IOException("malformed data: a length of " + length);
        }
        if (length > remaining()) {
            throw new EOFException("a length of " + length + " runs past the record's end");
        }
        return (int) length;
    }

    private int int32() throws IOException {
        long value = varint();
        if (value < Integer.MIN_VALUE || value > Integer.MAX_VALUE) {
            throw new IOException("malformed data: " + value + " does not fit an int");
        }
        return (int) value;
    }

    private long skipBlocks() throws IOException {
        while (true) {
            long count = varint();
            if (count >= 0) {
                return atMostBytesLeft(count); // 0: the end; otherwise items to skip one by one
            }
            in.skipFixed(length()); // a block of -count items, skipped by its byte size
        }
    }

    @Override
    public void skipString() throws IOException {
        in.skipFixed(length());
    }

    @Override
    public void skipBytes() throws IOException {
        in.skipFixed(length());
    }

    @Override
    public long skipArray() throws IOException {
        return skipBlocks();
    }

    @Override
    public long skipMap() throws IOException {
        return skipBlocks();
    }

    @Override
    public Utf8 readString(Utf8 old) throws IOException {
        int length = length();
        Utf8 result = old != null ? old : new Utf8();
        result.setByteLength(length);
        if (length > 0) {
            in.readFixed(result.getBytes(), 0, length);
        }
        return result;
    }

    @Override
    public String readString() throws IOException {
        return readString(null).toString();
    }

    @Override
    public ByteBuffer readBytes(ByteBuffer old) throws IOException {
        int length = length();
        byte[] bytes = new byte[length];
        in.readFixed(bytes, 0, length);
        return ByteBuffer.wrap(bytes);
    }

    @Override
    public boolean readBoolean() throws IOException {
        in.readFixed(one, 0, 1);
        return one[0] != 0;
    }

    @Override
    public int readInt() throws IOException {
        return int32();
    }

    @Override
    public int readEnum() throws IOException {
        return index("an enum");
    }

    @Override
    public int readIndex() throws IOException {
        return index("a union");
    }

    @Override
    public void readNull() throws IOException {
        in.readNull();
    }

    @Override
    public long readLong() throws IOException {
        return varint();
    }

    @Override
    public float readFloat() throws IOException {
        return in.readFloat();
    }

    @Override
    public double readDouble() throws IOException {
        return in.readDouble();
    }

    @Override
    public void readFixed(byte[] bytes, int start, int length) throws IOException {
        in.readFixed(bytes, start, length);
    }

    @Override
    public void skipFixed(int length) throws IOException {
        in.skipFixed(length);
    }

    @Override
    public long readArrayStart() throws IOException {
        return itemCount();
    }

    @Override
    public long arrayNext() throws IOException {
        return itemCount();
    }

    @Override
    public long readMapStart() throws IOException {
        return itemCount();
    }

    @Override
    public long mapNext() throws IOException {
        return itemCount();
    }

}
