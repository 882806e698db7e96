"""Gating of ``jax.distributed.initialize``: never on one host, always when asked, detected on
SLURM job steps and multi-worker TPU slices."""

import jax
import pytest

from musicrep_jax.training import distributed


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, None),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, "slurm"),
    ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "1"}, None),
    ({"SLURM_NTASKS": "4"}, None),
    ({"TPU_WORKER_HOSTNAMES": "10.0.0.2"}, None),
    ({"TPU_WORKER_HOSTNAMES": "10.0.0.2,10.0.0.3"}, "tpu"),
])
def test_detect_cluster(env, expected):
  assert distributed.detect_cluster(env) == expected


@pytest.fixture
def calls(monkeypatch):
  recorded = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: recorded.append(kw))
  monkeypatch.setattr(jax.config, "update", lambda *a: None)
  return recorded


def test_single_host_initializes_nothing(calls):
  assert not distributed.maybe_initialize(env={})
  assert calls == []


def test_explicit_coordinator_is_passed_through(calls):
  assert distributed.maybe_initialize("127.0.0.1:1234", 2, 1, env={})
  assert calls == [dict(coordinator_address="127.0.0.1:1234", num_processes=2, process_id=1)]


def test_environment_variables_ask_too(calls):
  env = {"MUSICREP_COORDINATOR": "h:1", "MUSICREP_NUM_PROCESSES": "3",
         "MUSICREP_PROCESS_ID": "2"}
  assert distributed.maybe_initialize(env=env)
  assert calls == [dict(coordinator_address="h:1", num_processes=3, process_id=2)]


def test_detected_cluster_lets_jax_find_it_and_off_wins(calls):
  slurm = {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "8"}
  assert distributed.maybe_initialize(env=slurm) and calls == [{}]
  assert not distributed.maybe_initialize(env=dict(slurm, MUSICREP_DISTRIBUTED="off"))
  assert distributed.maybe_initialize(env={"MUSICREP_DISTRIBUTED": "auto"})
  assert len(calls) == 2
