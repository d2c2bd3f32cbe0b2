package featurestore.job;

import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * The stream job's decode function: (payload, kafka_ts, too_late, late, partition) -> a Row of the reader schema's
 * fields ({@link EventDecoder}) and, last, the record's bytes (for {@link LatenessGate}, which takes them off), run by {@link DecodeOperator}. A record that arrived too late for any window
 * ({@code too_late}, decided by the source's SQL, or, after a restore, at or below the restored progress minus the
 * allowed lateness: {@link PartitionProgress#combined}) or that the decoder rejects goes to
 * {@link #deadLetterTag()} as a JSON dead letter: {@code topic}, {@code reason}, {@code detail},
 * {@code payload_b64}, {@code dead_lettered_at_ms}. Nothing is dropped silently (at parallelism 2 and above thanks to
 * {@link LatenessGate} behind it). Every record, dead-lettered or not, moves its partition's progress on after its
 * own decision, as it moves the source's watermark.
 *
 * <p>Metrics, in a {@code topic} group: {@code events_in}, {@code events_late} (behind the watermark but within
 * the allowed lateness), and {@code events_dead_lettered} in a {@code reason} group below it.
 */
public class DecodeEvents extends ProcessFunction<Row, Row> {
    private static final long serialVersionUID = 1L;
    private static final OutputTag<String> DEAD_LETTER = new OutputTag<>("dead-letter", Types.STRING);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String topic;
    private final EventDecoder decoder;
    private final long latenessMs;
    private final long outOfOrdernessMs;
    private final long maxFutureMs;
    private final long idleTimeoutMs;

    /** This subtask's progress per partition, restored or not ({@link DecodeOperator}). */
    private transient PartitionProgress progress;

    private transient MetricGroup metrics;
    private transient Counter eventsIn;
    private transient Counter eventsLate;
    private transient Map<String, Counter> deadLettered;

    /** The side output of dead letters (JSON text), for {@code getSideOutput}. */
    /**
     * The most bytes of a record a letter carries (512 KiB; base64 makes them 699,052 characters): a record the
     * broker takes (1,048,588 bytes by default) made a letter a third larger, over the producer's
     * {@code max.request.size} and the dead-letter topic's limit, so its sink failed the job on every replay.
     */
    public static final int MAX_PAYLOAD_BYTES = 512 * 1024;

    /** The most characters of a rejection's detail a letter carries. */
    public static final int MAX_DETAIL_CHARS = 4096;

    /** {@code detail}'s first {@link #MAX_DETAIL_CHARS} characters (a pair of surrogates is kept whole or left out). */
    static String cut(String detail) {
        if (detail == null || detail.length() <= MAX_DETAIL_CHARS) {
            return detail;
        }
        int end = Character.isHighSurrogate(detail.charAt(MAX_DETAIL_CHARS - 1)) ? MAX_DETAIL_CHARS - 1 : MAX_DETAIL_CHARS;
        return detail.substring(0, end);
    }

    public static OutputTag<String> deadLetterTag() {
        return DEAD_LETTER;
    }

    /**
     * {@code outOfOrdernessMs}, {@code maxFutureMs} and {@code idleTimeoutMs}: the source's watermark expression
     * (its {@code max_out_of_orderness}, and how far ahead of the clock a record may be before it stops counting)
     * and its {@code idle_timeout}, for the progress per partition ({@link PartitionProgress}).
     */
    public DecodeEvents(
            String topic,
            EventDecoder decoder,
            long latenessMs,
            long outOfOrdernessMs,
            long maxFutureMs,
            long idleTimeoutMs) {
        this.topic = topic;
        this.decoder = decoder;
        this.latenessMs = latenessMs;
        this.outOfOrdernessMs = outOfOrdernessMs;
        this.maxFutureMs = maxFutureMs;
        this.idleTimeoutMs = idleTimeoutMs;
    }

    PartitionProgress newProgress() {
        return new PartitionProgress(outOfOrdernessMs, maxFutureMs, idleTimeoutMs, PartitionProgress.monotonicMs());
    }

    void progress(PartitionProgress restored) {
        progress = restored;
    }

    @Override
    public void open(OpenContext openContext) {
        decoder.open(); // a bad reader schema fails the task at start, not at the first record
        metrics = getRuntimeContext().getMetricGroup().addGroup("topic", topic);
        eventsIn = metrics.counter("events_in");
        eventsLate = metrics.counter("events_late");
        deadLettered = new HashMap<>();
    }

    @Override
    public void processElement(Row value, Context ctx, Collector<Row> out) throws Exception {
        byte[] payload = (byte[]) value.getField(0);
        eventsIn.inc();
        Long recordMs = ctx.timestamp();
        long nowMs = System.currentTimeMillis(); // as the record is read, for its part in the partition's progress
        long readMs = PartitionProgress.monotonicMs(); // and by a clock a step of the system's time does not move
        // The restored progress (NONE in a run that was not restored): the SQL's rules against it, on top of its own.
        long restored = progress == null ? PartitionProgress.NONE : progress.combined();
        boolean since = restored != PartitionProgress.NONE && recordMs != null;
        try {
            if (Boolean.TRUE.equals(value.getField(2)) || since && recordMs <= restored - latenessMs) {
                String detail = "event time " + recordMs + " ms is at or behind the watermark minus the allowed lateness";
                ctx.output(DEAD_LETTER, deadLetter("too_late", detail, payload));
                return;
            }
            Object[] event;
            try {
                event = decoder.decode(payload, recordMs == null ? Long.MIN_VALUE : recordMs);
            } catch (Rejected rejected) {
                ctx.output(DEAD_LETTER, deadLetter(rejected.reason(), rejected.detail(), payload));
                return;
            }
            if (Boolean.TRUE.equals(value.getField(3)) || since && recordMs <= restored) {
                eventsLate.inc();
            }
            Object[] carried = Arrays.copyOf(event, event.length + 1); // the record's bytes, for LatenessGate
            carried[event.length] = payload;
            out.collect(Row.of(carried));
        } finally {
            Object partition = value.getArity() > 4 ? value.getField(4) : null;
            if (progress != null && recordMs != null && partition instanceof Integer) {
                progress.observe((Integer) partition, recordMs, nowMs, readMs);
            }
        }
    }

    private String deadLetter(String reason, String detail, byte[] payload) {
        deadLettered.computeIfAbsent(reason, r -> metrics.addGroup("reason", r).counter("events_dead_lettered")).inc();
        return letter(topic, reason, detail, payload);
    }

    /** A dead letter's JSON text (its fields: the class comment); the payload cut at {@link #MAX_PAYLOAD_BYTES}. */
    static String letter(String topic, String reason, String detail, byte[] payload) {
        ObjectNode letter = JSON.createObjectNode();
        letter.put("topic", topic);
        letter.put("reason", reason);
        letter.put("detail", cut(detail));
        byte[] bytes = payload == null ? new byte[0] : payload;
        boolean truncated = bytes.length > MAX_PAYLOAD_BYTES;
        byte[] carried = truncated ? Arrays.copyOf(bytes, MAX_PAYLOAD_BYTES) : bytes;
        letter.put("payload_b64", Base64.getEncoder().encodeToString(carried));
        if (truncated) { // the whole record stays in its topic (and archive) for their retention
            letter.put("payload_truncated", true);
            letter.put("payload_bytes", bytes.length);
        }
        letter.put("dead_lettered_at_ms", System.currentTimeMillis()); // last: DeadLetteredAt reads it there
        return letter.toString();
    }
}
