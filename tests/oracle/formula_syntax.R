# R's answers for formula syntax and transforms (model.matrix names/values, predict on new
# data, lmer/glmer fits with expression terms, factor responses); writes
# tests/reference/formula_syntax.json.gz.  Run from the repo root:
#   Rscript tests/oracle/formula_syntax.R
# The data are sleepstudy plus columns derived without randomness (see augment());
# tests/test_formula_syntax.py builds the same columns.
suppressMessages({library(lme4); library(lmerTest); library(splines); library(jsonlite)})
d <- read.csv(gzfile("src/mmfast/datasets/data/sleepstudy.csv.gz"))
augment <- function(d) {
  i <- seq_len(nrow(d)) - 1
  d$Subject <- factor(d$Subject, levels = sort(unique(d$Subject)))
  d$Reaction.time <- d$Reaction
  d[["a b"]] <- d$Reaction / 10
  d$f <- factor(c("a", "b", "c")[i %% 3 + 1])
  d$x8 <- d$Days * 12            # int8 in Python: x8^2 overflows there
  d$z8 <- (i %% 7) * 15
  d$Intercept <- (i %% 5) + 0.5  # a column named Intercept is data
  d$exposure.time <- 1 + (i %% 4)
  d$count <- round(d$Reaction / 50) + (i %% 3)
  y3 <- ifelse(d$Reaction < 260, "lo", ifelse(d$Reaction < 320, "mid", "hi"))
  d$y3 <- factor(y3, levels = sort(unique(y3)))  # text in Python: sorted levels
  d$yn <- factor(ifelse(d$Reaction > 290, "yes", "no"), levels = c("yes", "no"))
  d$lk <- d$Reaction > 290
  d
}
d <- augment(d)
nd <- d[c(1:12, 171:180), ]
nd$Days <- nd$Days + 0.5; nd$x8 <- nd$x8 + 6  # new values, beyond the range at the end

rhs <- c("poly(Days, 2)", "ns(Days, df = 3)", "splines::ns(Days, df = 2)",
         "relevel(f, ref = \"b\")", "I(Days^2) + log(Days + 1) + log(Days + 1, 2)",
         "Days %% 3 + Days %/% 4", "poly(Days, 2):f", "scale(Days) + sqrt(Days)",
         "`a b` + Reaction.time", "Intercept", "I(x8^2) + x8 * z8", "poly(Days, 3) * f",
         "ns(Days, knots = c(3, 6)) + exp(Days/10)", "factor(Days %/% 3) + pmax(Days, 4)",
         "log(x8 + 1):f - 1", "Intercept * f", "-1 + x8:f + I(x8 * z8) + (x8 > 50)",
         "relevel(f, 3) + poly(Days, 2, raw = TRUE)")
mm <- list()
for (r in rhs) {
  fo <- as.formula(paste("~", r))
  mf <- model.frame(fo, d)
  tt <- terms(mf)
  X <- model.matrix(tt, mf)
  Xn <- model.matrix(tt, model.frame(tt, nd))
  mm[[r]] <- list(names = colnames(X), X = unname(X), Xnew = unname(Xn))
}

ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5),
                      tolPwrss = 1e-10)
lmm <- list(
  "Reaction ~ 1|Subject", "log(Reaction) ~ Days | Subject",
  "log(Reaction.time) ~ poly(Days, 2) + (1 | Subject)",
  "I(Reaction/100) ~ ns(Days, df = 3) + (1 | Subject)",
  "log(`a b`) ~ Days + (1 | Subject)", "Reaction ~ Intercept + (1 | Subject)",
  "Reaction ~ relevel(f, ref = \"b\") + Days %% 3 + (1 | Subject)",
  "I(Reaction + x8 * z8) ~ I(x8^2) + x8:z8 + (1 | Subject)",
  "Reaction ~ log(Days + 1, 2) + (poly(Days, 2) | Subject)")
fits <- list()
for (fs in lmm) {
  m <- lme4::lmer(as.formula(fs), d, REML = TRUE, control = ctrl)
  fits[[fs]] <- list(fixef_names = names(fixef(m)), fixef = unname(fixef(m)),
                     objective = REMLcrit(m), sigma = sigma(m),
                     # lme4's predict fails on backticked names: NULL then
                     predict_new = tryCatch(unname(predict(m, newdata = nd)), error = function(e) NULL),
                     predict_new_pop = tryCatch(unname(predict(m, newdata = nd, re.form = NA)),
                                                error = function(e) NULL))
}
glmms <- list(
  list(f = "count ~ Days + offset(log(exposure.time)) + (1 | Subject)", family = "poisson"),
  list(f = "y3 ~ Days + (1 | Subject)", family = "binomial"),
  list(f = "yn ~ Days + (1 | Subject)", family = "binomial"),
  list(f = "lk ~ Days + (1 | Subject)", family = "binomial"))
gfits <- list()
for (g in glmms) {
  m <- glmer(as.formula(g$f), d, family = g$family, control = gctrl)
  gfits[[g$f]] <- list(family = g$family, fixef_names = names(fixef(m)), fixef = unname(fixef(m)),
                       deviance = -2 * as.numeric(logLik(m)), y = unname(m@resp$y),
                       predict_new = unname(predict(m, newdata = nd)))
}
# lmerTest's F tests on expression terms (the terms' names and columns, R's assign)
e2 <- read.csv(gzfile("src/mmfast/datasets/data/ex2.csv.gz"))
e2$z <- (seq_len(nrow(e2)) - 1) %% 5
af <- "res ~ factor(treatment_idx) * log(z + 1) + poly(z, 2) + (1 | midx)"
am <- lmerTest::lmer(as.formula(af), e2, control = ctrl)
tab <- function(a) list(terms = rownames(a), NumDF = a$NumDF, DenDF = a$DenDF,
                        F = a[["F value"]], p = a[["Pr(>F)"]])
anovas <- list(formula = af, type3 = tab(anova(am)), type2 = tab(anova(am, type = 2)))
out <- list(model_matrix = mm, lmer = fits, glmer = gfits, anova_ex2 = anovas,
            newdata_rows = c(1:12, 171:180) - 1,
            "_meta" = list(script = "tests/oracle/formula_syntax.R",
                           lme4 = as.character(packageVersion("lme4")), R = R.version.string,
                           control = "bobyqa rhoend 1e-12; glmer tolPwrss 1e-10"))
con <- gzfile("tests/reference/formula_syntax.json.gz", "w")
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, matrix = "rowmajor", null = "null",
                  na = "null"), con)
close(con)
cat("wrote tests/reference/formula_syntax.json.gz\n")
