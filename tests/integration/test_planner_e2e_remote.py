"""The planner's end-to-end tests (test_planner_e2e.py), unchanged, against an
agentd started with --remote pointed at a second agentd on loopback that runs
the shipped model: every model call of every run crosses the OpenAI protocol
twice, and the 20 concurrent runs share the second agentd's batched decode."""
import harness
import test_planner_e2e

if __name__ == "__main__":
    with harness.Agentd(config={"run_workers": "4"}) as backend:
        tests = {n: f for n, f in vars(test_planner_e2e).items() if n.startswith("test_")}
        raise SystemExit(harness.main(tests, args=["--remote", backend.url + "/v1"],
                                      config={"run_workers": "4", "remote_model": "agentd-small"},
                                      env={"AGENTD_REMOTE_API_KEY": backend.admin_key}))
