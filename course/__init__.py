"""Course tooling: authoring (`course build`), grading (`course check`) and shared plotting helpers."""
