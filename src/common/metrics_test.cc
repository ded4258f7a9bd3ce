#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace phivault::metrics {
namespace {

TEST(MetricsTest, CounterWithLabelsRendersSortedWithHelpAndType) {
  Registry r;
  r.GetCounter("phivault_http_requests_total", "HTTP requests.", {{"route", "/fhir/{type}"}, {"method", "GET"}, {"status", "200"}})
      .Increment();
  r.GetCounter("phivault_http_requests_total", "ignored help", {{"status", "200"}, {"method", "GET"}, {"route", "/fhir/{type}"}})
      .Increment(2);
  r.GetCounter("phivault_http_requests_total", "", {{"route", "other"}, {"method", "POST"}, {"status", "400"}}).Increment();
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP phivault_http_requests_total HTTP requests.\n"
            "# TYPE phivault_http_requests_total counter\n"
            "phivault_http_requests_total{method=\"GET\",route=\"/fhir/{type}\",status=\"200\"} 3\n"
            "phivault_http_requests_total{method=\"POST\",route=\"other\",status=\"400\"} 1\n");
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Registry r;
  Histogram& h = r.GetHistogram("lat_seconds", "Latency.", {{"route", "/x"}}, {0.25, 1, 10});
  h.Observe(0.125);
  h.Observe(0.25);  // le is inclusive
  h.Observe(0.5);
  h.Observe(100);
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{route=\"/x\",le=\"0.25\"} 2\n"
            "lat_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
            "lat_seconds_bucket{route=\"/x\",le=\"10\"} 3\n"
            "lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{route=\"/x\"} 100.875\n"
            "lat_seconds_count{route=\"/x\"} 4\n");
}

TEST(MetricsTest, DefaultLatencyBuckets) {
  const auto& b = LatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_DOUBLE_EQ(b.front(), 0.0005);
  EXPECT_DOUBLE_EQ(b.back(), 10);
  Registry r;
  r.GetHistogram("d", "h").Observe(0.0004);
  std::string out = r.RenderPrometheus();
  EXPECT_NE(out.find("d_bucket{le=\"0.0005\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("d_bucket{le=\"2.5\"} 1\n"), std::string::npos) << out;
}

TEST(MetricsTest, GaugesValueAndCallbackAndEscaping) {
  Registry r;
  r.GetGauge("conns", "Open\nconnections \\ now.").Set(3);
  r.GetGauge("conns", "", {{"kind", "a\"b\\c\nd"}}).Add(1.5);
  r.SetGaugeCallback("cb", "From callback.", {}, [] { return 42.0; });
  EXPECT_EQ(r.RenderPrometheus(),
            "# HELP cb From callback.\n"
            "# TYPE cb gauge\n"
            "cb 42\n"
            "# HELP conns Open\\nconnections \\\\ now.\n"
            "# TYPE conns gauge\n"
            "conns 3\n"
            "conns{kind=\"a\\\"b\\\\c\\nd\"} 1.5\n");
}

TEST(MetricsTest, InvalidNamesAreSanitized) {
  Registry r;
  r.GetCounter("bad-name", "h", {{"0bad label", "v"}}).Increment();
  EXPECT_EQ(r.RenderPrometheus(), "# HELP bad_name h\n# TYPE bad_name counter\nbad_name{_bad_label=\"v\"} 1\n");
}

TEST(MetricsTest, ConcurrentIncrementsAreNotLost) {
  Registry r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&r] {
      for (int i = 0; i < 10000; ++i) {
        r.GetCounter("c_total", "h", {{"k", "v"}}).Increment();
        r.GetHistogram("h_seconds", "h").Observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.GetCounter("c_total", "h", {{"k", "v"}}).Value(), 80000u);
  EXPECT_EQ(r.GetHistogram("h_seconds", "h").Count(), 80000u);
}

}  // namespace
}  // namespace phivault::metrics
