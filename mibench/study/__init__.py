"""Human preference studies: blinded A/B pages, votes in the run's store, agreement with the judges."""
