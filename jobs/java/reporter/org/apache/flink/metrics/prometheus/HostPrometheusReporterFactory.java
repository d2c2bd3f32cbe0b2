/*
 * Flink's Prometheus reporter, bound to one host (Flink's own binds every interface: it has no host
 * option). Built by jobs/reporter.py with the JDK's javac against PyFlink's own jars; it lives in
 * Flink's package to reach the reporter's package-private collector registry.
 *
 * metrics.reporter.<name>.factory.class: org.apache.flink.metrics.prometheus.HostPrometheusReporterFactory
 * metrics.reporter.<name>.host: 127.0.0.1 (the default)
 * metrics.reporter.<name>.port: 9249
 */
package org.apache.flink.metrics.prometheus;

import io.prometheus.client.exporter.HTTPServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.util.Properties;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;

public class HostPrometheusReporterFactory implements MetricReporterFactory {

    @Override
    public MetricReporter createMetricReporter(Properties properties) {
        String host = properties.getProperty("host", "127.0.0.1");
        int port = Integer.parseInt(properties.getProperty("port", "9249"));
        return new HostPrometheusReporter(host, port);
    }

    /** Serves the collector registry the base class fills, on host:port only. */
    public static class HostPrometheusReporter extends AbstractPrometheusReporter {
        private final HTTPServer server;

        HostPrometheusReporter(String host, int port) {
            try {
                server = new HTTPServer(new InetSocketAddress(host, port), registry, true);
            } catch (IOException e) {
                throw new UncheckedIOException("could not serve Prometheus metrics on " + host + ":" + port, e);
            }
            log.info("Started Prometheus reporter HTTP server on {}:{}.", host, port);
        }

        @Override
        public void close() {
            server.stop();
            super.close();
        }
    }
}
