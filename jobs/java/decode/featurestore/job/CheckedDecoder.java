package featurestore.job;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;

import org.apache.flink.avro.shaded.org.apache.avro.io.BinaryDecoder;
import org.apache.flink.avro.shaded.org.apache.avro.io.Decoder;
import org.apache.flink.avro.shaded.org.apache.avro.util.Utf8;

/**
 * A {@link BinaryDecoder} that refuses a negative or too long length where it skips a writer-only field.
 *
 * <p>Avro's binary decoder skips a string or bytes of a negative length by moving backwards, and a block of array
 * or map items by a byte count that may be negative too: a corrupt record could then decode "successfully" from
 * bytes read twice. Here a skipped string or bytes checks its length, and array and map items are skipped one by
 * one (as Avro's contract allows, and as fastavro, the Python decoder's library, does).
 */
final class CheckedDecoder extends Decoder {
    private final BinaryDecoder in;

    CheckedDecoder(BinaryDecoder in) {
        this.in = in;
    }

    /** Bytes left after what was read. */
    int remaining() throws IOException {
        return in.inputStream().available();
    }

    private void skipLength() throws IOException {
        long length = in.readLong();
        if (length < 0) {
            throw new IOException("malformed data: a length of " + length);
        }
        if (length > remaining()) {
            throw new EOFException("a length of " + length + " runs past the record's end");
        }
        in.skipFixed((int) length);
    }

    @Override
    public void skipString() throws IOException {
        skipLength();
    }

    @Override
    public void skipBytes() throws IOException {
        skipLength();
    }

    @Override
    public long skipArray() throws IOException {
        return in.arrayNext(); // the items of the next block, to skip one by one
    }

    @Override
    public long skipMap() throws IOException {
        return in.mapNext();
    }

    @Override
    public void readNull() throws IOException {
        in.readNull();
    }

    @Override
    public boolean readBoolean() throws IOException {
        return in.readBoolean();
    }

    @Override
    public int readInt() throws IOException {
        return in.readInt();
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
    public Utf8 readString(Utf8 old) throws IOException {
        return in.readString(old);
    }

    @Override
    public String readString() throws IOException {
        return in.readString();
    }

    @Override
    public ByteBuffer readBytes(ByteBuffer old) throws IOException {
        return in.readBytes(old);
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
    public int readEnum() throws IOException {
        return in.readEnum();
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

    @Override
    public int readIndex() throws IOException {
        return in.readIndex();
    }
}
