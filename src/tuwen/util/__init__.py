"""Small helpers every layer may use (vectors, threads, progress, Chinese text, saved folders); they import no
other part of tuwen."""
