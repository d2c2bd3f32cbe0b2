package featurestore.job;

import java.io.IOException;
import java.io.Serializable;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.avro.shaded.org.apache.avro.LogicalType;
import org.apache.flink.avro.shaded.org.apache.avro.Schema;
import org.apache.flink.avro.shaded.org.apache.avro.generic.GenericDatumReader;
import org.apache.flink.avro.shaded.org.apache.avro.generic.GenericRecord;
import org.apache.flink.avro.shaded.org.apache.avro.io.BinaryDecoder;
import org.apache.flink.avro.shaded.org.apache.avro.io.DecoderFactory;
import org.apache.flink.avro.shaded.org.apache.avro.util.Utf8;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

/**
 * Confluent-framed Avro bytes -> an event's field values in the reader schema's order, or {@link Rejected}.
 *
 * <p>The rules, reasons and order of {@code udfs.decode.EventDecoder} (the Python decoder, which stays the
 * reference; {@code tests/integration/test_java_decoder.py} holds the two to the same answers): the Confluent
 * frame ({@code empty}, {@code truncated}, {@code bad_magic}), the writer schema from the registry by id
 * ({@code unknown_schema_id} on a 404, {@code bad_writer_schema}), Avro resolution of the writer schema to the
 * reader schema ({@code undecodable}, trailing bytes included), then the record: a required field (not a union
 * with null) null, or a required {@code *_id} string empty ({@code missing_field}); a float NaN or infinite
 * ({@code non_finite}); the event time beyond now + {@code maxFutureMs} ({@code future_timestamp}) or before 1970
 * ({@code bad_timestamp}); and not the Kafka record's timestamp ({@code timestamp_mismatch}). A registry that
 * cannot answer is not a bad record: IOException.
 */
public final class EventDecoder implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the instants a timestamp-millis may be (Python's datetime). */
    private static final long MIN_INSTANT_MS = -62_135_596_800_000L;
    private static final long MAX_INSTANT_MS = 253_402_300_799_999L;

    private final String readerSchemaText;
    private final String timestampField;
    private final String registryUrl;
    private final String token;
    private final long maxFutureMs;

    private transient Schema readerSchema;
    private transient List<String> fieldNames;
    private transient List<Integer> requiredFields; // positions of the fields that are not a union with null
    private transient int timestampPosition;
    private transient boolean[] timestampMillis; // per reader field: a timestamp-millis (or a union with null of one)
    private transient Map<Long, GenericDatumReader<GenericRecord>> readers;
    private transient HttpClient http;
    private transient BinaryDecoder decoder;
    private transient CharsetDecoder utf8;

    public EventDecoder(String readerSchemaText, String timestampField, String registryUrl, String token, long maxFutureMs) {
        this.readerSchemaText = readerSchemaText;
        this.timestampField = timestampField;
        this.registryUrl = registryUrl.replaceAll("/+$", "");
        this.token = token == null || token.isEmpty() ? null : token;
        this.maxFutureMs = maxFutureMs;
    }

    private void open() {
        readerSchema = new Schema.Parser().parse(readerSchemaText);
        fieldNames = new ArrayList<>();
        requiredFields = new ArrayList<>();
        timestampMillis = new boolean[readerSchema.getFields().size()];
        for (Schema.Field field : readerSchema.getFields()) {
            fieldNames.add(field.name());
            for (Schema branch : field.schema().getType() == Schema.Type.UNION ? field.schema().getTypes() : List.of(field.schema())) {
                LogicalType logical = branch.getLogicalType();
                timestampMillis[field.pos()] |= logical != null && "timestamp-millis".equals(logical.getName());
            }
            if (!isOptional(field.schema())) {
                requiredFields.add(field.pos());
            }
        }
        Schema.Field timestamp = readerSchema.getField(timestampField);
        if (timestamp == null) {
            throw new IllegalArgumentException("the reader schema has no field " + timestampField);
        }
        timestampPosition = timestamp.pos();
        readers = new HashMap<>();
        utf8 = StandardCharsets.UTF_8.newDecoder(); // malformed input is an error, not a replacement
        http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(1)).build();
    }

    /** A union with null, as {@code udfs.decode.required_fields} has it. */
    private static boolean isOptional(Schema schema) {
        if (schema.getType() != Schema.Type.UNION) {
            return false;
        }
        for (Schema branch : schema.getTypes()) {
            if (branch.getType() == Schema.Type.NULL) {
                return true;
            }
        }
        return false;
    }

    /**
     * {@code EventDecoder.decode_record}: a Kafka record's value (its timestamp {@code recordMs}) as the reader
     * schema's field values (strings as String, the event time as epoch ms), or Rejected with the reason.
     */
    public Object[] decode(byte[] payload, long recordMs) throws Rejected, IOException, InterruptedException {
        if (readerSchema == null) {
            open();
        }
        if (payload == null || payload.length == 0) {
            throw new Rejected("empty", "record value is empty or null");
        }
        if (payload.length < 5) {
            throw new Rejected("truncated", payload.length + " bytes is shorter than the 5-byte header");
        }
        if (payload[0] != 0) {
            throw new Rejected("bad_magic", "first byte is " + payload[0] + ", not the Confluent magic byte 0");
        }
        long schemaId = ByteBuffer.wrap(payload, 1, 4).getInt() & 0xFFFFFFFFL;
        GenericDatumReader<GenericRecord> reader = reader(schemaId);
        GenericRecord record;
        int trailing;
        try {
            decoder = DecoderFactory.get().binaryDecoder(payload, 5, payload.length - 5, decoder);
            CheckedDecoder checked = new CheckedDecoder(decoder);
            record = reader.read(null, checked);
            trailing = checked.remaining();
        } catch (Exception | StackOverflowError | OutOfMemoryError exc) {
            decoder = null; // its buffer may be in any state
            throw new Rejected("undecodable", "Avro body does not match schema id " + schemaId + ": " + exc);
        }
        Object[] values = new Object[fieldNames.size()];
        for (int i = 0; i < values.length; i++) {
            Object field = record.get(i);
            if (field instanceof Utf8) { // Avro does not check UTF-8; Python's decoder (and Flink's STRING) must
                Utf8 text = (Utf8) field;
                try {
                    field = utf8.decode(ByteBuffer.wrap(text.getBytes(), 0, text.getByteLength())).toString();
                } catch (CharacterCodingException exc) {
                    throw new Rejected(
                            "undecodable",
                            "Avro body does not match schema id " + schemaId + ": field '" + fieldNames.get(i)
                                    + "' is not UTF-8");
                }
            }
            if (timestampMillis[i] && field != null) {
                long ms = ((Number) field).longValue();
                if (ms < MIN_INSTANT_MS || ms > MAX_INSTANT_MS) { // as fastavro: no datetime holds it
                    throw new Rejected(
                            "undecodable",
                            "Avro body does not match schema id " + schemaId + ": field '" + fieldNames.get(i)
                                    + "' is " + ms + " ms, outside the years 1 to 9999");
                }
            }
            values[i] = field;
        }
        if (trailing != 0) {
            throw new Rejected("undecodable", trailing + " trailing bytes after the Avro record");
        }
        for (int position : requiredFields) {
            Object field = values[position];
            String name = fieldNames.get(position);
            if (field == null || (field instanceof String && name.endsWith("_id") && ((String) field).isEmpty())) {
                throw new Rejected("missing_field", "required field '" + name + "' is missing or empty");
            }
        }
        for (int i = 0; i < values.length; i++) {
            Object field = values[i];
            if (field instanceof Double || field instanceof Float) {
                double d = ((Number) field).doubleValue();
                if (Double.isNaN(d) || Double.isInfinite(d)) {
                    String shown = Double.isNaN(d) ? "nan" : d > 0 ? "inf" : "-inf"; // as Python prints them
                    throw new Rejected("non_finite", "field '" + fieldNames.get(i) + "' is " + shown);
                }
            }
        }
        long tsMs = ((Number) values[timestampPosition]).longValue();
        values[timestampPosition] = tsMs;
        if (tsMs > System.currentTimeMillis() + maxFutureMs) {
            throw new Rejected(
                    "future_timestamp", timestampField + "=" + tsMs + " is beyond now + " + maxFutureMs + " ms");
        }
        if (tsMs < 0) {
            throw new Rejected("bad_timestamp", timestampField + "=" + tsMs + " is before 1970");
        }
        if (tsMs != recordMs) {
            throw new Rejected(
                    "timestamp_mismatch",
                    timestampField + "=" + tsMs + " but the Kafka timestamp is " + recordMs
                            + "; producers must set the record timestamp to the event time");
        }
        return values;
    }

    /** The resolving reader of a writer schema id: fetched from the registry once, then cached. */
    private GenericDatumReader<GenericRecord> reader(long schemaId) throws Rejected, IOException, InterruptedException {
        GenericDatumReader<GenericRecord> reader = readers.get(schemaId);
        if (reader != null) {
            return reader;
        }
        String text = writerSchema(schemaId);
        if (text == null) {
            throw new Rejected("unknown_schema_id", "schema id " + schemaId + " is not in the schema registry");
        }
        Schema writer;
        try {
            writer = new Schema.Parser().parse(text);
        } catch (RuntimeException exc) {
            throw new Rejected("bad_writer_schema", "schema id " + schemaId + ": " + exc.getMessage());
        }
        reader = new GenericDatumReader<>(writer, readerSchema);
        readers.put(schemaId, reader);
        return reader;
    }

    /**
     * The writer schema text of a registry id, null on a 404; bounded like {@code jobs.registry_client}: one
     * attempt waits at most 1 s, a failed attempt is retried twice (after 100 and 200 ms), then IOException.
     */
    private String writerSchema(long schemaId) throws IOException, InterruptedException {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(registryUrl + "/schemas/ids/" + schemaId))
                .timeout(Duration.ofSeconds(1))
                .header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        if (token != null) {
            byte[] credentials = ("featurestore:" + token).getBytes(StandardCharsets.UTF_8);
            request.header("Authorization", "Basic " + Base64.getEncoder().encodeToString(credentials));
        }
        IOException last = null;
        for (int attempt = 0; attempt < 3; attempt++) {
            if (attempt > 0) {
                Thread.sleep(100L * attempt);
            }
            try {
                HttpResponse<String> response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
                if (response.statusCode() == 404) {
                    return null;
                }
                if (response.statusCode() == 200) {
                    JsonNode schema = JSON.readTree(response.body()).get("schema");
                    if (schema == null || !schema.isTextual()) {
                        throw new IOException("no schema text in the registry's answer for id " + schemaId);
                    }
                    return schema.asText();
                }
                last = new IOException("HTTP " + response.statusCode() + " for schema id " + schemaId);
            } catch (IOException exc) {
                last = exc;
            }
        }
        throw new IOException("schema registry unreachable: " + last, last);
    }
}
