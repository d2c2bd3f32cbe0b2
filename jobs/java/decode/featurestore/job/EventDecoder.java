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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

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
 * ({@code unknown_schema_id} when the registry answers 404 with error code 40403, {@code bad_writer_schema} when
 * it does not parse), Avro resolution of the writer schema to the reader schema ({@code undecodable}: bytes that do
 * not match, a record name that is neither the reader's nor one of its aliases, a string that is not UTF-8,
 * trailing bytes; read by {@link CheckedDecoder}), then the record: a required field (not a union with null, or
 * the event time) null, or a required {@code *_id} or entity-key string empty ({@code missing_field}); a string value of an entity
 * key field ({@code keyFields}, every field of a composite key) of more than {@link #MAX_KEY_CHARS} characters,
 * counted in code points as Python's {@code len} counts them ({@code bad_key}); a float NaN or infinite
 * ({@code non_finite}); the event time beyond now + {@code maxFutureMs} ({@code future_timestamp}) or before 1970
 * ({@code bad_timestamp}); and not the Kafka record's timestamp ({@code timestamp_mismatch}). Values are Avro's
 * primitives: no logical type is applied (a {@code timestamp-millis} is its long). A registry that cannot answer is
 * not a bad record: IOException.
 */
public final class EventDecoder implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper JSON = new ObjectMapper();
    /** {@code registry.core.entity_keys.MAX_KEY_CHARS}: the longest entity key value the stores hold (the online API's 256). */
    public static final int MAX_KEY_CHARS = 256;

    private final String readerSchemaText;
    private final String timestampField;
    private final String[] keyFields;
    private final String registryUrl;
    private final String token;
    private final long maxFutureMs;

    private transient Schema readerSchema;
    private transient List<String> fieldNames;
    private transient List<Integer> requiredFields; // positions: fields not a union with null, and the event time
    private transient int timestampPosition;
    private transient List<Integer> keyPositions; // the key fields in the reader schema (one not in it: none)
    private transient Map<Long, GenericDatumReader<GenericRecord>> readers;
    private transient Map<Long, String> mismatched; // writer ids whose record name is not the reader's -> that name
    private transient Map<Long, Schema> unionWriters; // writer ids whose schema is a union -> that union
    private transient HttpClient http;
    private transient BinaryDecoder decoder;
    private transient CharsetDecoder utf8;

    /** {@code keyFields}: the source's entity key fields ({@code Source.key_fields}), held to {@link #MAX_KEY_CHARS}. */
    public EventDecoder(
            String readerSchemaText,
            String timestampField,
            String[] keyFields,
            String registryUrl,
            String token,
            long maxFutureMs) {
        this.readerSchemaText = readerSchemaText;
        this.timestampField = timestampField;
        this.keyFields = keyFields == null ? new String[0] : keyFields.clone();
        this.registryUrl = registryUrl.replaceAll("/+$", "");
        this.token = token == null || token.isEmpty() ? null : token;
        this.maxFutureMs = maxFutureMs;
    }

    /** Parse the reader schema and set up; called by the operator's {@code open}, or by the first decode. */
    public void open() {
        if (readerSchema != null) {
            return;
        }
        Schema reader = new Schema.Parser().parse(readerSchemaText);
        Schema.Field timestamp = reader.getField(timestampField);
        if (timestamp == null) {
            throw new IllegalArgumentException("the reader schema has no field " + timestampField);
        }
        fieldNames = new ArrayList<>();
        requiredFields = new ArrayList<>();
        for (Schema.Field field : reader.getFields()) {
            fieldNames.add(field.name());
            if (!isOptional(field.schema()) || field.name().equals(timestampField)) {
                requiredFields.add(field.pos());
            }
        }
        timestampPosition = timestamp.pos();
        keyPositions = new ArrayList<>();
        for (String name : keyFields) {
            Schema.Field key = reader.getField(name);
            if (key != null) {
                keyPositions.add(key.pos());
            }
        }
        readers = new HashMap<>();
        mismatched = new HashMap<>();
        unionWriters = new HashMap<>();
        utf8 = StandardCharsets.UTF_8.newDecoder(); // malformed input is an error, not a replacement
        http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(1)).build();
        readerSchema = reader; // last: set up only once everything else is
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
        open();
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
        String mismatch = reader == null ? mismatched.get(schemaId) : mismatchedBranch(schemaId, payload);
        if (mismatch != null) {
            throw new Rejected(
                    "undecodable",
                    "Avro body does not match schema id " + schemaId + ": its record " + mismatch
                            + " is not " + readerSchema.getName() + " (nor one of its aliases)");
        }
        GenericRecord record;
        int trailing;
        try {
            decoder = DecoderFactory.get().binaryDecoder(payload, 5, payload.length - 5, decoder);
            CheckedDecoder checked = new CheckedDecoder(decoder);
            record = reader.read(null, checked);
            trailing = checked.remaining();
        } catch (Exception | StackOverflowError exc) {
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
            values[i] = field;
        }
        if (trailing != 0) {
            throw new Rejected("undecodable", trailing + " trailing bytes after the Avro record");
        }
        for (int position : requiredFields) {
            Object field = values[position];
            String name = fieldNames.get(position);
            boolean idLike = name.endsWith("_id") || keyPositions.contains(position); // a key is an id, whatever its name
            if (field == null || (field instanceof String && idLike && ((String) field).isEmpty())) {
                throw new Rejected("missing_field", "required field '" + name + "' is missing or empty");
            }
        }
        for (int position : keyPositions) {
            Object field = values[position];
            if (field instanceof String) { // an integer key is never too long
                String text = (String) field;
                // code points, not UTF-16 units: a character outside the BMP is one, as in Python and Arrow
                int chars = text.length() > MAX_KEY_CHARS ? text.codePointCount(0, text.length()) : 0;
                if (chars > MAX_KEY_CHARS) {
                    throw new Rejected(
                            "bad_key",
                            "key field '" + fieldNames.get(position) + "' is " + chars + " characters (at most "
                                    + MAX_KEY_CHARS + ")");
                }
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

    /** Whether a writer record resolves to the reader's by name: the same unqualified name, or one of its aliases. */
    private static boolean namesMatch(Schema writer, Schema reader) {
        if (writer.getName().equals(reader.getName())) {
            return true;
        }
        for (String alias : reader.getAliases()) {
            if (writer.getName().equals(alias.substring(alias.lastIndexOf('.') + 1))) {
                return true;
            }
        }
        return false;
    }

    /**
     * The name of the record a union writer's body was written with when it does not resolve to the reader's
     * ({@link #namesMatch}), else null. Avro's Java resolver ignores record names in a union's branches too; the
     * specification and fastavro resolve the selected branch by name. A malformed branch index is left to the read.
     */
    private String mismatchedBranch(long schemaId, byte[] payload) {
        Schema union = unionWriters.get(schemaId);
        if (union == null) {
            return null;
        }
        long raw = 0;
        for (int i = 5, shift = 0; i < payload.length && shift < 64; i++, shift += 7) {
            raw |= (long) (payload[i] & 0x7F) << shift;
            if ((payload[i] & 0x80) == 0) {
                long index = (raw >>> 1) ^ -(raw & 1); // zigzag
                if (index < 0 || index >= union.getTypes().size()) {
                    return null;
                }
                Schema branch = union.getTypes().get((int) index);
                return branch.getType() == Schema.Type.RECORD && !namesMatch(branch, readerSchema)
                        ? branch.getName()
                        : null;
            }
        }
        return null;
    }

    /**
     * The reader schema to resolve {@code writer} with: where a writer record (the writer itself, or a union's record
     * branch, the only one that resolves) resolves to the reader by {@link #namesMatch} under another full name, a
     * copy of the reader naming it among its aliases. Avro's Java resolver applies the reader's field aliases only to a writer record of the
     * reader's full name or of one of its aliases ({@code Schema.applyAliases}): a writer in another namespace, or
     * in none, had its aliased fields read as missing (a required one dead-lettered, one with a default given the
     * default, an optional key null) where fastavro, and so backfills, read their values.
     */
    private Schema readerNaming(Schema writer) {
        List<Schema> records = new ArrayList<>();
        if (writer.getType() == Schema.Type.RECORD) {
            records.add(writer);
        } else if (writer.getType() == Schema.Type.UNION) {
            for (Schema branch : writer.getTypes()) {
                if (branch.getType() == Schema.Type.RECORD) {
                    records.add(branch);
                }
            }
        }
        records.removeIf(record -> !namesMatch(record, readerSchema));
        // One record at most: two branches of a union renamed to the reader's name would be a union Avro refuses
        // ("Duplicate in union"), every body of it undecodable; such a writer is resolved as before.
        if (records.size() != 1 || records.get(0).getFullName().equals(readerSchema.getFullName())) {
            return readerSchema;
        }
        Schema record = records.get(0);
        Schema named = new Schema.Parser().parse(readerSchemaText); // a copy: the reader stays as it is for others
        try {
            named.addAlias(record.getName(), record.getNamespace() == null ? "" : record.getNamespace());
        } catch (RuntimeException exc) {
            return readerSchema; // a writer name Avro's Name refuses (the writer is parsed unvalidated): as before
        }
        return named;
    }

    /**
     * The resolving reader of a writer schema id: fetched from the registry once, then cached; null (cached too)
     * when the writer's record name does not resolve to the reader's ({@link #mismatched}).
     */
    private GenericDatumReader<GenericRecord> reader(long schemaId) throws Rejected, IOException, InterruptedException {
        if (readers.containsKey(schemaId)) {
            return readers.get(schemaId);
        }
        String text = writerSchema(schemaId);
        if (text == null) {
            throw new Rejected("unknown_schema_id", "schema id " + schemaId + " is not in the schema registry");
        }
        Schema writer;
        try {
            // Not validated beyond parsing, as fastavro and the registry: names and defaults a stricter parser
            // would refuse still decode (a writer's defaults are never used when reading).
            writer = new Schema.Parser().setValidate(false).setValidateDefaults(false).parse(text);
        } catch (RuntimeException exc) {
            throw new Rejected("bad_writer_schema", "schema id " + schemaId + ": " + exc.getMessage());
        }
        GenericDatumReader<GenericRecord> reader = new GenericDatumReader<>(writer, readerNaming(writer));
        if (writer.getType() == Schema.Type.RECORD && !namesMatch(writer, readerSchema)) {
            reader = null; // Avro's Java resolver ignores record names; the specification (and fastavro) do not
            mismatched.put(schemaId, writer.getName());
        }
        if (writer.getType() == Schema.Type.UNION) {
            unionWriters.put(schemaId, writer);
        }
        readers.put(schemaId, reader);
        return reader;
    }

    /** A registry answer's body as JSON; an empty object when it is not JSON. */
    private static JsonNode json(String body) {
        try {
            JsonNode node = JSON.readTree(body);
            return node == null ? JSON.createObjectNode() : node;
        } catch (IOException exc) {
            return JSON.createObjectNode();
        }
    }

    /**
     * The writer schema text of a registry id, null when the registry answers that it has no such schema (404 with
     * Confluent's error code 40403; any other answer is the registry failing, not an unknown id); bounded like
     * {@code jobs.registry_client}: one attempt waits at most 1 s for the whole answer, a failed attempt is retried
     * twice (after 100 and 200 ms), then IOException.
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
            // The request timeout stops at the response headers; the future's bounds the body too.
            CompletableFuture<HttpResponse<String>> sent =
                    http.sendAsync(request.build(), HttpResponse.BodyHandlers.ofString());
            try {
                HttpResponse<String> response = sent.get(1, TimeUnit.SECONDS);
                JsonNode body = json(response.body()); // an empty node when the body is not JSON (a proxy's page)
                JsonNode code = body.path("error_code"); // a number, as Python's client compares it: not "40403"
                if (response.statusCode() == 404 && code.isNumber() && code.asDouble() == 40403) {
                    return null;
                }
                if (response.statusCode() == 200 && body.path("schema").isTextual()) {
                    return body.get("schema").asText();
                }
                // In one line: the job's error line quotes it (a proxy's page spans lines).
                String excerpt = response.body().substring(0, Math.min(200, response.body().length()));
                last = new IOException("HTTP " + response.statusCode() + " for schema id " + schemaId + ": "
                        + excerpt.replaceAll("\\s+", " ").trim());
            } catch (TimeoutException exc) {
                sent.cancel(true);
                last = new IOException("no answer within 1 s for schema id " + schemaId);
            } catch (ExecutionException exc) {
                last = new IOException(String.valueOf(exc.getCause()), exc.getCause());
            }
        }
        throw new IOException("schema registry unreachable: " + last.getMessage(), last);
    }
}
