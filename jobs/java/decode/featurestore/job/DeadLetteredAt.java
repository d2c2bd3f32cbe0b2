package featurestore.job;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;

/**
 * A dead letter's Kafka timestamp is when it was dead-lettered ({@code dead_lettered_at_ms}), not its event time:
 * a record from a clock far ahead would be refused by the dead-letter topic (and fail the job), and one far behind
 * would fall out of the topic's time-based retention at once.
 */
public class DeadLetteredAt implements SerializableTimestampAssigner<String> {
    private static final long serialVersionUID = 1L;
    private static final String FIELD = "\"dead_lettered_at_ms\":";

    @Override
    public long extractTimestamp(String letter, long recordTimestamp) {
        int at = letter.lastIndexOf(FIELD);
        if (at < 0) {
            return System.currentTimeMillis();
        }
        int start = at + FIELD.length();
        while (start < letter.length() && letter.charAt(start) == ' ') {
            start++;
        }
        int end = start;
        while (end < letter.length() && Character.isDigit(letter.charAt(end))) {
            end++;
        }
        return end > start ? Long.parseLong(letter.substring(start, end)) : System.currentTimeMillis();
    }
}
