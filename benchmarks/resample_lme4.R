# R side of benchmarks/resample_timing.py: the two resampling workloads of issue 5.
#
# Usage:  Rscript benchmarks/resample_lme4.R [nsim] [nperm] [data_dir]
#   nsim      PBmodcomp simulations on waterlick (default 200)
#   nperm     label permutations on ex1 (default 100)
#   data_dir  the gzipped CSVs (default src/mmfast/datasets/data)
#
# 1. pbkrtest::PBmodcomp(glmer(lick ~ dff + (1 | mouseID)), glmer(lick ~ 1 + (1 | mouseID)),
#    nsim) on waterlick, serial (pbkrtest's default cl = 1): seconds per simulation.
# 2. The lecture's permutation check on ex1: shuffle treatment_idx across the 24 mice, then
#    lmerTest::lmer(res ~ factor(treatment_idx) + (1 | midx)) (REML) and anova() (Type III,
#    Satterthwaite); separately the naive anova(lm(res ~ factor(treatment_idx))).
#    Seconds per permutation of each, and the rejection rates at 0.05.
# Output: one JSON object on stdout (last line).

suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
})

args <- commandArgs(trailingOnly = TRUE)
nsim <- if (length(args) >= 1) as.integer(args[1]) else 200L
nperm <- if (length(args) >= 2) as.integer(args[2]) else 100L
data_dir <- if (length(args) >= 3) args[3] else "src/mmfast/datasets/data"
read_data <- function(name) read.csv(gzfile(file.path(data_dir, paste0(name, ".csv.gz"))))
elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}

# --- 1. PBmodcomp on waterlick -----------------------------------------------------------------
wl <- read_data("waterlick")
wl$mouseID <- factor(wl$mouseID, levels = sort(unique(wl$mouseID)))
big <- glmer(lick ~ dff + (1 | mouseID), data = wl, family = binomial)
small <- glmer(lick ~ 1 + (1 | mouseID), data = wl, family = binomial)
set.seed(1)
pb <- NULL
pb_s <- elapsed(pb <- suppressWarnings(PBmodcomp(big, small, nsim = nsim)))
pb_test <- as.data.frame(pb$test)

# --- 2. permutation check on ex1 ----------------------------------------------------------------
ex1 <- read_data("ex1")
lab <- tapply(ex1$treatment_idx, ex1$midx, function(v) v[1])
set.seed(2)
perms <- lapply(seq_len(nperm), function(i) sample(lab))
permuted <- function(i) {
  d <- ex1
  newlab <- perms[[i]]
  names(newlab) <- names(lab)
  d$treatment_idx <- newlab[as.character(d$midx)]
  d
}
datas <- lapply(seq_len(nperm), permuted)
p_lmm <- numeric(nperm)
p_lm <- numeric(nperm)
lmm_s <- elapsed(for (i in seq_len(nperm)) {
  m <- suppressMessages(suppressWarnings(
    lmerTest::lmer(res ~ factor(treatment_idx) + (1 | midx), data = datas[[i]])))
  p_lmm[i] <- anova(m)[["Pr(>F)"]][1]
})
lm_s <- elapsed(for (i in seq_len(nperm)) {
  p_lm[i] <- anova(lm(res ~ factor(treatment_idx), data = datas[[i]]))[["Pr(>F)"]][1]
})

out <- list(
  R = R.version.string, lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest")),
  pb_nsim = nsim, pb_seconds = pb_s, pb_per_sim = pb_s / nsim,
  pb_lrt = pb_test["LRT", "stat"], pb_p = pb_test["PBtest", "p.value"],
  perm_n = nperm, perm_lmm_seconds = lmm_s, perm_lmm_per = lmm_s / nperm,
  perm_lm_per = lm_s / nperm,
  perm_rate_lmm = mean(p_lmm < 0.05), perm_rate_lm = mean(p_lm < 0.05)
)
cat(toJSON(out, auto_unbox = TRUE, digits = NA), "\n")
