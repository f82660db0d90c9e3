"""The benchmark definition: AIST test-split music, prompt suites, judge questions and job expansion."""
