# glmer.nb and glmmTMB(nbinom2) per gene for benchmarks/nb_pipeline.py: reads DIR/cells.csv and
# DIR/counts.csv (genes x cells), writes DIR/out.json (wall seconds per fit, the estimates).
#   Rscript benchmarks/nb_pipeline.R DIR
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
cells <- read.csv(file.path(dir, "cells.csv"))
cells$donor <- factor(cells$donor); cells$condition <- factor(cells$condition)
counts <- as.matrix(read.csv(file.path(dir, "counts.csv")))
f <- count ~ condition + offset(log(size_factor)) + (1 | donor)
quiet <- function(expr) tryCatch(suppressWarnings(suppressMessages(expr)), error = function(e) e)
G <- nrow(counts)
t_nb <- t_tmb <- numeric(G); tmb <- vector("list", G); nb_err <- vector("list", G)
for (g in seq_len(G)) {
  d <- cells; d$count <- counts[g, ]
  t_nb[g] <- system.time(m <- quiet(glmer.nb(f, d)))[["elapsed"]]
  nb_err[g] <- list(if (inherits(m, "error")) conditionMessage(m) else NULL)
  t_tmb[g] <- system.time(m <- quiet(glmmTMB(f, d, family = nbinom2)))[["elapsed"]]
  tmb[[g]] <- if (inherits(m, "error")) list(logLik = NULL, error = conditionMessage(m)) else
    list(logLik = as.numeric(logLik(m)), fixef = unname(fixef(m)$cond),
         se = unname(suppressWarnings(sqrt(diag(vcov(m)$cond)))), theta = sigma(m),
         convergence = m$fit$convergence, pdHess = m$sdr$pdHess)
}
writeLines(toJSON(list(time_glmer_nb = t_nb, time_glmmTMB = t_tmb, glmmTMB = tmb, glmer_nb_error = nb_err),
                  auto_unbox = TRUE, digits = NA, null = "null", na = "null"), file.path(dir, "out.json"))
