package featurestore.job;

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
 * The stream job's decode function: (payload, kafka_ts, too_late, late) -> a Row of the reader schema's fields
 * ({@link EventDecoder}), run by {@link DecodeOperator}. A record that arrived too late for any window
 * ({@code too_late}, decided by the source's SQL, or at or below the restored watermark minus the allowed
 * lateness after a restore) or that the decoder rejects goes to {@link #deadLetterTag()} as a JSON dead letter:
 * {@code topic}, {@code reason}, {@code detail}, {@code payload_b64}, {@code dead_lettered_at_ms}. Nothing is
 * dropped silently.
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

    /** The watermark this subtask had reached before a restore ({@link DecodeOperator}); MIN_VALUE when none. */
    private long restoredWatermark = Long.MIN_VALUE;

    private transient MetricGroup metrics;
    private transient Counter eventsIn;
    private transient Counter eventsLate;
    private transient Map<String, Counter> deadLettered;

    /** The side output of dead letters (JSON text), for {@code getSideOutput}. */
    public static OutputTag<String> deadLetterTag() {
        return DEAD_LETTER;
    }

    public DecodeEvents(String topic, EventDecoder decoder, long latenessMs) {
        this.topic = topic;
        this.decoder = decoder;
        this.latenessMs = latenessMs;
    }

    void restoredWatermark(long watermark) {
        restoredWatermark = watermark;
    }

    /** Too late against the restored watermark: {@code ms <= watermark - lateness} (the SQL's rule). */
    private boolean tooLateSinceRestore(Long recordMs) {
        return restoredWatermark != Long.MIN_VALUE && recordMs != null && recordMs <= restoredWatermark - latenessMs;
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
        if (Boolean.TRUE.equals(value.getField(2)) || tooLateSinceRestore(recordMs)) {
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
        boolean lateSinceRestore = restoredWatermark != Long.MIN_VALUE && recordMs != null && recordMs <= restoredWatermark;
        if (Boolean.TRUE.equals(value.getField(3)) || lateSinceRestore) {
            eventsLate.inc();
        }
        out.collect(Row.of(event));
    }

    private String deadLetter(String reason, String detail, byte[] payload) {
        deadLettered.computeIfAbsent(reason, r -> metrics.addGroup("reason", r).counter("events_dead_lettered")).inc();
        ObjectNode letter = JSON.createObjectNode();
        letter.put("topic", topic);
        letter.put("reason", reason);
        letter.put("detail", detail);
        letter.put("payload_b64", Base64.getEncoder().encodeToString(payload == null ? new byte[0] : payload));
        letter.put("dead_lettered_at_ms", System.currentTimeMillis()); // last: DeadLetteredAt reads it there
        return letter.toString();
    }
}
