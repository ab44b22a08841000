"""From a machine and a request to a recommendation: the facts, the rules' condition language,
the rule engine, the recommendation's file formats, and ``autotune inspect``'s report."""
