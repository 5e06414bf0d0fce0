# glmmTMB's side of benchmarks/structures_bench.py: fit the ar1 model, time the fit alone.
#   Rscript benchmarks/structures_glmmtmb.R trials.csv out.json [gaussian|poisson]
suppressMessages({library(glmmTMB); library(jsonlite)})
a <- commandArgs(TRUE)
fam <- if (length(a) >= 3) a[3] else "gaussian"
d <- read.csv(a[1])
d$mouse <- factor(d$mouse); d$neuron <- factor(d$neuron); d$fblock <- factor(d$block)
f <- y ~ stim + (1 | mouse) + ar1(0 + fblock | neuron)
st <- system.time(m <- glmmTMB(f, d, family = get(fam)()))
sec <- st[["elapsed"]]
cpu <- st[["user.self"]] + st[["sys.self"]] + st[["user.child"]] + st[["sys.child"]]
writeLines(toJSON(list(seconds = sec, cpu_seconds = cpu, loglik = -m$fit$objective, sigma = sigma(m),
                       fixef = unname(fixef(m)$cond), converged = m$fit$convergence == 0),
                  auto_unbox = TRUE, digits = 15), a[2])
