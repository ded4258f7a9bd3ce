// A vault served with auditing switched off, for bench/server_bench.sh only:
// it measures the same GET over HTTP without the audit log, in the same run
// as `phivault serve`, so the cost of auditing is a measured ratio. It is
// built only with PHIVAULT_BENCH=ON, is never installed, and the product
// binary has no such switch.
//
// Usage: unaudited_server DATA_DIR KEY_FILE PORT ISSUER
//   ISSUER: the base URL whose built-in tokens to accept (the `phivault
//   serve` address the benchmark minted its token for).
#include <signal.h>

#include <cstdio>
#include <string>

#include "api/access_control.h"
#include "api/fhir_service.h"
#include "api/vault.h"
#include "http/server.h"
#include "unaudited.h"

int main(int argc, char** argv) {
  using namespace phivault;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s DATA_DIR KEY_FILE PORT ISSUER\n", argv[0]);
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  api::VaultConfig cfg;
  cfg.data_dir = argv[1];
  cfg.key.key_file = argv[2];
  auto vault = api::Vault::Open(cfg);
  if (!vault.ok()) {
    std::fprintf(stderr, "%s\n", vault.status().ToString().c_str());
    return 1;
  }
  api::AccessConfig ac;
  ac.builtin_issuer = argv[4];
  ac.builtin_audience = std::string(argv[4]) + "/fhir";
  auto access = api::AccessControl::Create(ac, (*vault)->keyring(), (*vault)->store(), nullptr);
  if (!access.ok()) {
    std::fprintf(stderr, "%s\n", access.status().ToString().c_str());
    return 1;
  }
  bench::UnauditedForBenchmarks unaudited((*vault)->store());
  api::ServiceOptions so;
  so.base_url = argv[4];
  api::FhirService service((*vault)->store(), access->get(), &unaudited, so);
  http::ServerOptions ho;
  ho.port = static_cast<uint16_t>(std::stoi(argv[3]));
  ho.max_connections_per_address = 0;  // wrk connects from one address, as to `phivault serve` in the benchmark
  auto server = http::Server::Start(ho, &service);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  (*server)->Shutdown(std::chrono::seconds(5));
  return 0;
}
