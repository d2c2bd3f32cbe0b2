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
 *   <li>An int, enum index or union index is read as a long and must fit 32 bits: Avro's reader stops at 5 bytes
 *       and drops the high bits, fastavro reads the whole varint.
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

    private int length() throws IOException {
        long length = in.readLong();
        if (length < 0) {
            throw new IOException("malformed data: a length of " + length);
        }
        if (length > remaining()) {
            throw new EOFException("a length of " + length + " runs past the record's end");
        }
        return (int) length;
    }

    private int int32() throws IOException {
        long value = in.readLong();
        if (value < Integer.MIN_VALUE || value > Integer.MAX_VALUE) {
            throw new IOException("malformed data: " + value + " does not fit an int");
        }
        return (int) value;
    }

    private long skipBlocks() throws IOException {
        while (true) {
            long count = in.readLong();
            if (count >= 0) {
                return count; // 0: the end; otherwise items to skip one by one
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
        return int32();
    }

    @Override
    public int readIndex() throws IOException {
        return int32();
    }

    @Override
    public void readNull() throws IOException {
        in.readNull();
    }

    @Override
    public long readLong() throws IOException {
        return in.readLong();
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
        return in.readArrayStart();
    }

    @Override
    public long arrayNext() throws IOException {
        return in.arrayNext();
    }

    @Override
    public long readMapStart() throws IOException {
        return in.readMapStart();
    }

    @Override
    public long mapNext() throws IOException {
        return in.mapNext();
    }

}
