package featurestore.job;

import java.util.Arrays;

import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The too-late check again, behind the shuffle that feeds the windows: at parallelism 2 or more, a record a source
 * subtask passed can still be too late for the windows, and is dead-lettered here instead of dropped by them.
 *
 * <p>Why: the source's SQL judges a record by its own subtask's watermark. A subtask that was idle (all its
 * partitions silent for {@code idle_timeout}) and resumes behind the others is left out of every downstream
 * operator's watermark until it catches up (Flink's {@code StatusWatermarkValve}), so the windows judge its records
 * by the other subtasks' higher watermark and drop those past {@code end - 1 + lateness} without a trace. This
 * function runs after a {@code keyBy} from every decode subtask, so its watermark is the one the windows' valves
 * compute (the same inputs, the same rule), and a record it lets through reaches each window operator no later
 * than that watermark (each channel carries its records ahead of the watermarks sent after them). The rule is
 * the source's: too late when the event time is at or behind the watermark minus the allowed lateness.
 *
 * <p>Input: the decoded events with the record's bytes as a last field (as {@link DecodeEvents} sends them);
 * output: the events without it, and too-late records as dead letters on
 * {@link DecodeEvents#deadLetterTag()}, counted as the decoder counts them ({@code topic}, {@code reason}
 * {@code too_late}, {@code events_dead_lettered}).
 */
public class LatenessGate extends KeyedProcessFunction<String, Row, Row> {
    private static final long serialVersionUID = 1L;

    private final String topic;
    private final long latenessMs;
    private transient Counter tooLate; // registered at the first letter, as the decoder registers its own

    public LatenessGate(String topic, long latenessMs) {
        this.topic = topic;
        this.latenessMs = latenessMs;
    }

    /** Whether an event at {@code recordMs} is too late by {@code watermark} ({@code Long.MIN_VALUE}: none yet). */
    public static boolean tooLate(long recordMs, long watermark, long latenessMs) {
        return watermark != Long.MIN_VALUE && recordMs <= watermark - latenessMs && watermark - latenessMs <= watermark;
    }

    @Override
    public void processElement(Row value, Context ctx, Collector<Row> out) {
        int last = value.getArity() - 1;
        byte[] payload = (byte[]) value.getField(last);
        Long recordMs = ctx.timestamp();
        long watermark = ctx.timerService().currentWatermark();
        if (recordMs != null && tooLate(recordMs, watermark, latenessMs)) {
            if (tooLate == null) {
                tooLate = getRuntimeContext()
                        .getMetricGroup()
                        .addGroup("topic", topic)
                        .addGroup("reason", "too_late")
                        .counter("events_dead_lettered");
            }
            tooLate.inc();
            String detail = "event time " + recordMs + " ms is at or behind the windows' watermark minus the allowed "
                    + "lateness (" + watermark + " ms - " + latenessMs + " ms), read by a source subtask behind the others";
            ctx.output(DecodeEvents.deadLetterTag(), DecodeEvents.letter(topic, "too_late", detail, payload));
            return;
        }
        Row event = new Row(value.getKind(), last);
        for (int i = 0; i < last; i++) {
            event.setField(i, value.getField(i));
        }
        out.collect(event);
    }

    /** The entity of a decoded event: its key fields' values (by position), joined by NUL. */
    public static class EntityKey implements KeySelector<Row, String> {
        private static final long serialVersionUID = 1L;
        private final int[] fields;

        public EntityKey(int[] fields) {
            this.fields = Arrays.copyOf(fields, fields.length);
        }

        @Override
        public String getKey(Row value) {
            if (fields.length == 1) {
                return String.valueOf(value.getField(fields[0]));
            }
            StringBuilder key = new StringBuilder();
            for (int i = 0; i < fields.length; i++) {
                if (i > 0) {
                    key.append('\u0000');
                }
                key.append(value.getField(fields[i]));
            }
            return key.toString();
        }
    }
}
