# glmmTMB's side of benchmarks/structures_bench.py: fit the ar1 model, time the fit alone.
#   Rscript benchmarks/structures_glmmtmb.R trials.csv out.json
suppressMessages({library(glmmTMB); library(jsonlite)})
a <- commandArgs(TRUE)
d <- read.csv(a[1])
d$mouse <- factor(d$mouse); d$neuron <- factor(d$neuron); d$fblock <- factor(d$block)
sec <- system.time(m <- glmmTMB(y ~ stim + (1 | mouse) + ar1(0 + fblock | neuron), d))[["elapsed"]]
writeLines(toJSON(list(seconds = sec, loglik = -m$fit$objective, sigma = sigma(m),
                       fixef = unname(fixef(m)$cond), converged = m$fit$convergence == 0),
                  auto_unbox = TRUE, digits = 15), a[2])
