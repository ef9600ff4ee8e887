"""Operations: Prometheus metrics and ``/healthz`` (``telemetry``, reading the workers
through the small protocols of ``observed``) and Redis ACL users per role (``acl``).

May import: ``consumers.state`` and below, ``gate``, ``schemas``. Never the workers it
observes (they import it to be instrumented).
"""
