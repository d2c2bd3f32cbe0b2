package featurestore.job;

/** A record that cannot become an event: its reason (the dead-letter topic keys on it) and detail. */
public final class Rejected extends Exception {
    private static final long serialVersionUID = 1L;
    private final String reason;
    private final String detail;

    public Rejected(String reason, String detail) {
        super(reason + ": " + detail, null, false, false);
        this.reason = reason;
        this.detail = detail;
    }

    public String reason() {
        return reason;
    }

    public String detail() {
        return detail;
    }
}
