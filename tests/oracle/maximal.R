# lme4 on a small simulated maximal model (issue 19): 50 subjects x 50 items, each pair once,
# a 2x2 within-subject and within-item design (A, B coded -0.5/+0.5, rotated by a Latin
# square) with all 4 columns random for subject and item (two 4x4 blocks, 20 θ; the item
# A:B slope has true SD 0, so the fit may be singular).  ML, BOBYQA with tight tolerances.
# Also the fit on items 1-30 only ("few_items": dense part 120 < 200, the BOBYQA size before).
# Writes the data and the fits to tests/reference/maximal.json.gz.
# Run from the repo root:  Rscript tests/oracle/maximal.R
suppressMessages({library(lme4); library(jsonlite); library(MASS)})
set.seed(1919)
ns <- 50; ni <- 50
d <- expand.grid(item = seq_len(ni), subj = seq_len(ns))[, c("subj", "item")]
cond <- (d$subj + d$item) %% 4
d$A <- (cond %% 2) - 0.5
d$B <- (cond %/% 2) - 0.5
X <- cbind(1, d$A, d$B, d$A * d$B)
covm <- function(sd, r) { R <- matrix(r, 4, 4); diag(R) <- 1; outer(sd, sd) * R }
bs <- mvrnorm(ns, rep(0, 4), covm(c(40, 15, 20, 10), 0.3))
bi <- mvrnorm(ni, rep(0, 4), covm(c(30, 10, 12, 0), 0.2))
d$y <- round(drop(X %*% c(500, 20, -30, 10)) + rowSums(X * (bs[d$subj, ] + bi[d$item, ]))
             + rnorm(nrow(d), 0, 60), 6)
d$subj <- factor(d$subj, levels = sort(unique(d$subj)))
d$item <- factor(d$item, levels = sort(unique(d$item)))
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e6))
fit <- function(d) {
  w <- character(0)
  t0 <- proc.time()[["elapsed"]]
  m <- withCallingHandlers(
    lmer(y ~ A * B + (A * B | subj) + (A * B | item), d, REML = FALSE, control = ctrl),
    warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") },
    message = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleMessage") })
  list(theta = unname(getME(m, "theta")), sigma = sigma(m), fixef = unname(fixef(m)),
       deviance = unname(m@devcomp$cmp["dev"]), logLik = as.numeric(logLik(m)),
       singular = isSingular(m), feval = m@optinfo$feval,
       seconds = proc.time()[["elapsed"]] - t0, warnings = w)
}
out <- c(list(
  data = list(subj = as.integer(d$subj), item = as.integer(d$item), A = d$A, B = d$B, y = d$y),
  formula = "y ~ A * B + (A * B | subj) + (A * B | item)"), fit(d))
out$few_items <- fit(droplevels(d[as.integer(d$item) <= 30, ]))
out$lme4 <- as.character(packageVersion("lme4"))
con <- gzfile("tests/reference/maximal.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = I(17)), con)
close(con)
cat(sprintf("deviance %.8f, feval %d, singular %s, %.1f s\n", out$deviance, out$feval,
            out$singular, out$seconds))
print(out$theta)
cat(sprintf("few_items: deviance %.8f, feval %d, singular %s, %.1f s\n", out$few_items$deviance,
            out$few_items$feval, out$few_items$singular, out$few_items$seconds))
